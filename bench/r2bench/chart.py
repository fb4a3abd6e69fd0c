"""The WAN chart: `wan_svg` draws MB/s against RTT, one panel per direction, both axes
logarithmic, as a plain SVG (no plotting library: the bench uses the standard library only)."""

import math

from .util import MB, human


def log_ticks(lo, hi):
    """1, 2, 5 x 10^n from lo to hi: the grid of a logarithmic axis."""
    ticks, n = [], math.floor(math.log10(lo))
    while 10 ** n <= hi:
        ticks += [m * 10 ** n for m in (1, 2, 5) if lo <= m * 10 ** n <= hi]
        n += 1
    return ticks


def esc(text):
    """Text as SVG text content."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_head(width, height, title, subtitle):
    """The opening of a chart: the SVG element, a white ground, the title and the subtitle."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{esc(title)}</text>',
            f'<text x="{width / 2}" y="44" text-anchor="middle" fill="#555">{esc(subtitle)}</text>']


def wan_svg(panels, window, subtitle):
    """A plain SVG of throughput against RTT, one panel per direction, both axes logarithmic (a
    ratio is the same gap at every RTT, and window/RTT is a straight line): `panels` is a list of
    (title, [(series name, colour, dashed, {rtt: MB/s})]). A grey dotted line shows what one
    connection can move (window / RTT); every point is labelled with its value."""
    W, H, top, left, pw, ph, gap = 980, 480, 70, 60, 400, 300, 90
    rtts = sorted({rtt for _, series in panels for *_, pts in series for rtt in pts})
    x_lo, x_hi = min(rtts) / 1.4, max(rtts) * 1.4
    values = [v for _, series in panels for *_, pts in series for v in pts.values() if v > 0]
    one = lambda rtt: window / (rtt / 1000) / MB
    at = lambda mbps: window / (mbps * MB) * 1000  # the RTT at which one connection moves mbps
    ticks = log_ticks(1e-3, 1e6)
    y_lo = max(t for t in ticks if t <= min(values) / 1.3)
    y_hi = min(t for t in ticks if t >= max(values) * 1.15)
    ref = (max(x_lo, at(y_hi)), min(x_hi, at(y_lo)))  # the part of window/RTT inside the plot
    lx = lambda v: math.log10(v)
    out = svg_head(W, H, f"Throughput against round-trip time, through bench/link.py ({human(window)} window per "
                         f"connection)", subtitle)
    for k, (title, series) in enumerate(panels):
        x0 = left + k * (pw + gap)
        X = lambda rtt: x0 + pw * (lx(rtt) - lx(x_lo)) / (lx(x_hi) - lx(x_lo))
        Y = lambda v: top + ph - ph * (lx(min(max(v, y_lo), y_hi)) - lx(y_lo)) / (lx(y_hi) - lx(y_lo))
        out.append(f'<text x="{x0 + pw / 2}" y="{top - 8}" text-anchor="middle" font-weight="bold">{esc(title)}</text>')
        for v in log_ticks(y_lo, y_hi):
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{x0 - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        for rtt in rtts:
            out.append(f'<line x1="{X(rtt):.1f}" x2="{X(rtt):.1f}" y1="{top}" y2="{top + ph}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{X(rtt):.1f}" y="{top + ph + 16}" text-anchor="middle">{rtt}</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 34}" text-anchor="middle">RTT (ms, log scale)</text>')
        out.append(f'<text transform="translate({x0 - 42},{top + ph / 2}) rotate(-90)" text-anchor="middle">'
                   f'MB/s (log scale)</text>')
        if ref[0] < ref[1]:
            out.append(f'<line x1="{X(ref[0]):.1f}" y1="{Y(one(ref[0])):.1f}" x2="{X(ref[1]):.1f}" '
                       f'y2="{Y(one(ref[1])):.1f}" stroke="#999" stroke-width="1.5" stroke-dasharray="2,3"/>')
        for name, colour, dashed, pts in series:
            xs = sorted(pts)
            dash = ' stroke-dasharray="7,4"' if dashed else ""
            out.append(f'<polyline points="{" ".join(f"{X(r):.1f},{Y(pts[r]):.1f}" for r in xs)}" fill="none" '
                       f'stroke="{colour}" stroke-width="2.5"{dash}/>')
            for r in xs:
                # The label goes above the point if it is the highest at this RTT, else below.
                highest = pts[r] >= max(other[r] for *_, other in series if r in other)
                out.append(f'<circle cx="{X(r):.1f}" cy="{Y(pts[r]):.1f}" r="4" fill="{colour}"/>')
                out.append(f'<text x="{X(r) + 7:.1f}" y="{Y(pts[r]) + (-8 if highest else 16):.1f}" fill="{colour}" '
                           f'font-weight="bold" stroke="white" stroke-width="3" paint-order="stroke">{pts[r]:.1f}</text>')
        legend = [(name, colour, ' stroke-dasharray="7,4"' if dashed else "") for name, colour, dashed, _ in series]
        legend.append(("one connection: window / RTT", "#999", ' stroke-dasharray="2,3"'))
        for n, (name, colour, dash) in enumerate(legend):
            ly = top + ph + 58 + 17 * n
            out.append(f'<line x1="{x0 + 10}" x2="{x0 + 40}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                       f'stroke-width="2.5"{dash}/>')
            out.append(f'<text x="{x0 + 48}" y="{ly}">{esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"



def ratio_svg(panels, subtitle):
    """A plain SVG of our throughput over theirs against the file size (logarithmic), one panel
    per direction and one line per link: `panels` is a list of (title, [(link, colour,
    {size: ratio})]). A grey line marks 1x (as fast as theirs)."""
    W, H, top, left, pw, ph, gap = 980, 470, 70, 60, 400, 300, 90
    sizes = sorted({s for _, series in panels for *_, pts in series for s in pts})
    ratios = [v for _, series in panels for *_, pts in series for v in pts.values()] or [1.0]
    x_lo, x_hi = min(sizes) / 1.5, max(sizes) * 1.5
    y_lo, y_hi = min(0.5, min(ratios) * 0.9), max(1.5, max(ratios) * 1.1)
    out = svg_head(W, H, "r2mpu over the guide's pair and curl, against the file size", subtitle)
    for k, (title, series) in enumerate(panels):
        x0 = left + k * (pw + gap)
        X = lambda s: x0 + pw * (math.log10(s) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))
        Y = lambda v: top + ph - ph * (v - y_lo) / (y_hi - y_lo)
        out.append(f'<text x="{x0 + pw / 2}" y="{top - 8}" text-anchor="middle" font-weight="bold">{esc(title)}</text>')
        step = 0.25 if y_hi - y_lo <= 2.5 else 1.0
        v = math.ceil(y_lo / step) * step
        while v <= y_hi:
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{x0 - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}x</text>')
            v += step
        for s in sizes:
            out.append(f'<line x1="{X(s):.1f}" x2="{X(s):.1f}" y1="{top}" y2="{top + ph}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{X(s):.1f}" y="{top + ph + 16}" text-anchor="middle">{human(s)}</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(1):.1f}" y2="{Y(1):.1f}" stroke="#999" stroke-width="1.5" '
                   f'stroke-dasharray="2,3"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 34}" text-anchor="middle">file size (log scale)</text>')
        for name, colour, pts in series:
            xs = sorted(pts)
            out.append(f'<polyline points="{" ".join(f"{X(s):.1f},{Y(pts[s]):.1f}" for s in xs)}" fill="none" '
                       f'stroke="{colour}" stroke-width="2.5"/>')
            for s in xs:
                out.append(f'<circle cx="{X(s):.1f}" cy="{Y(pts[s]):.1f}" r="4" fill="{colour}"/>')
                out.append(f'<text x="{X(s) + 6:.1f}" y="{Y(pts[s]) - 7:.1f}" fill="{colour}" stroke="white" '
                           f'stroke-width="3" paint-order="stroke">{pts[s]:.2f}</text>')
        for n, (name, colour, _) in enumerate(series):
            lx, ly = x0 + 10 + 95 * n, top + ph + 58
            out.append(f'<line x1="{lx}" x2="{lx + 26}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"/>')
            out.append(f'<text x="{lx + 32}" y="{ly}">{esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
