//! The device side the daemons' tests drive, one module per virtio device: requests built
//! with the device's core crate, sent through a [`crate::TestFrontend`], answers checked
//! (test tooling: a wrong answer panics, failing the calling test). Each has a probe, one
//! correct answer, which the shared suites use through [`crate::binary::Subject::probe`].

pub mod gpio;
pub mod i2c;
