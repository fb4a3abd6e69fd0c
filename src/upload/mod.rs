//! One upload.

pub mod append;
pub mod digest;
pub mod machine;
pub mod object;
