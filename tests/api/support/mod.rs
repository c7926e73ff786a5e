//! Test helpers: an in-process broker on a random port, the real binary as a child
//! process, and credential providers the tests control.

#![allow(dead_code)]

pub mod app;
pub mod binary;
pub mod creds;
pub mod idp;
pub mod oracle;
