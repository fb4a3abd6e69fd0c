//! Issue 23, item 4: on a terminal, the progress bar counts what the Worker holds. The binary
//! runs under `script`, which gives it a pseudo-terminal as a user's shell would, against a
//! real `wrangler dev` behind a proxy that holds each part's answer.

mod util;

use std::process::Command;
use std::time::Duration;

use util::{multipart_etag, Action, Env, Proxy, PART};

/// One drawing of the bar, `upload [===>   ] 5.00 MiB/20.00 MiB 1.20 MiB/s x4 ETA 3s`: the
/// bytes it says are held and the rate, both in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Frame {
    held: f64,
    rate: f64,
}

/// `5.00 MiB` or `0 B` as bytes.
fn bytes(number: &str, unit: &str) -> f64 {
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other}"),
    };
    number.parse::<f64>().unwrap() * scale
}

/// Every drawing of the upload's bar in what the terminal received, in order, with the
/// terminal's control sequences taken out.
fn frames(screen: &str) -> Vec<Frame> {
    let mut plain = String::new();
    let mut chars = screen.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI: ESC [ parameters, then a final letter.
            '\u{1b}' => {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\r' => plain.push('\n'),
            c => plain.push(c),
        }
    }
    plain
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.trim().strip_prefix("upload [")?.split_once("] ")?;
            // `5.00 MiB` / `20.00 MiB 1.20 MiB` / `s x4 …`
            let mut pieces = rest.split('/');
            let held: Vec<&str> = pieces.next()?.split_whitespace().collect();
            let total_and_rate: Vec<&str> = pieces.next()?.split_whitespace().collect();
            let [number, unit] = held[..] else { return None };
            let [_, _, rate, rate_unit] = total_and_rate[..] else { return None };
            Some(Frame { held: bytes(number, unit), rate: bytes(rate, rate_unit) })
        })
        .collect()
}

/// Four parts sent at once, each answered a second after the one before, the first two
/// seconds in: for those two seconds the bytes sit in the proxy, and the bar says 0 B at 0 B/s;
/// after, it says the answered parts' bytes, never more, at a rate no higher than they make over
/// the time since the start. Counting bytes handed to sockets said the whole file (and a rate of
/// megabytes a second) at once.
#[test]
fn on_a_terminal_the_bar_counts_only_the_parts_the_worker_answered() {
    let env = Env::new("progress-tty");
    let (_, data) = env.file("tty.bin", 4 * PART);
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.part_number() {
        Some(n) => Action::ForwardAfter(Duration::from_millis(1000 + 1000 * u64::from(n))),
        None => Action::Forward,
    });
    let args = ["upload", "tty.bin", "progress/tty.bin", "--part-size", "5MiB", "--concurrency", "4", "--via-worker"];
    let r2mpu = env.command(&args);
    let line = format!("stty cols 200 rows 40; exec {} {}", env!("CARGO_BIN_EXE_r2mpu"), args.join(" "));
    let mut command = Command::new("script");
    command.args(["-qefc", &line, "/dev/null"]).current_dir(env.dir.path()).env("TERM", "xterm");
    for (name, value) in r2mpu.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let output = command.output().expect("script(1) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");

    let frames = frames(&screen);
    let part = PART as f64;
    // Drawn every 200 ms: the two seconds before the first answer are several frames.
    let before_any = frames.iter().take_while(|f| f.held == 0.0).count();
    assert!(before_any >= 3, "frames before the first answer: {frames:?}\n{screen}");
    assert!(frames[..before_any].iter().all(|f| f.rate == 0.0), "a rate before any answer: {frames:?}");
    for frame in &frames {
        let parts = frame.held / part;
        assert!(parts.fract() == 0.0 && parts <= 4.0, "not whole answered parts: {frame:?} in {frames:?}");
        // k parts answered no sooner than 1 + k seconds in: at most 5 MiB/s, whatever k.
        assert!(frame.rate < part, "{frame:?}: faster than the answers came, in {frames:?}");
    }
    assert!(frames.iter().any(|f| f.held > 0.0), "the bar showed answered parts: {frames:?}\n{screen}");
    let download = env.run(&["download", "progress/tty.bin", "back.bin"]).expect(0);
    assert_eq!(download.field("etag"), multipart_etag(&data, PART));
    assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "the bytes came back different");
}
