//! Part arithmetic the transfers and the server's upload list share, on top of the part
//! layout in `r2mpu_api::layout` (which the Worker shares too).

use r2mpu_api::layout::Layout;

/// The length of part `n`: the width of [`Layout::part_range`].
pub fn part_len(layout: &Layout, n: u16) -> u64 {
    let (start, end) = layout.part_range(n);
    end - start
}
