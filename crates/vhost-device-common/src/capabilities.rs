//! `--print-capabilities`, as QEMU's vhost-user backend conventions define it.

use std::ffi::OsStr;
use std::io::Write;

/// The option that asks for the capabilities.
pub const OPTION: &str = "--print-capabilities";

/// The JSON document describing a backend of the given virtio device type.
pub fn document(device_type: &str) -> String {
    format!("{{\n  \"type\": \"{device_type}\",\n  \"features\": []\n}}\n")
}

/// Whether an argument list asks for the capabilities (any position, program name excluded).
pub fn requested<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter().skip(1).any(|a| a.as_ref() == OPTION)
}

/// Prints the capabilities and exits with status 0 if the process was started with
/// `--print-capabilities`; every other option is ignored, as QEMU expects.
pub fn exit_if_requested(device_type: &str) {
    if requested(std::env::args_os()) {
        let mut out = std::io::stdout().lock();
        let status = match out
            .write_all(document(device_type).as_bytes())
            .and_then(|()| out.flush())
        {
            Ok(()) => 0,
            Err(_) => 1,
        };
        std::process::exit(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_the_json_qemu_expects() {
        let doc = document("i2c");
        assert!(doc.contains("\"type\": \"i2c\""));
        assert!(doc.contains("\"features\": []"));
    }

    #[test]
    fn requested_anywhere_but_program_name() {
        assert!(requested(["prog", "-s", "x", "--print-capabilities"]));
        assert!(requested(["prog", "--print-capabilities", "--bogus"]));
        assert!(!requested(["--print-capabilities"]));
        assert!(!requested(["prog", "-s", "x"]));
    }
}
