//! stub
pub mod command;
pub mod data;
pub mod line;
