//! The protocols.

pub mod guide;
pub mod objects;
pub mod tus;
pub mod uploads;
