//! Unit tests of the parent module (kept out of the production file).

use super::*;

fn config(args: &[&str]) -> Result<Config, String> {
    let a = Args::try_parse_from(std::iter::once("vhost-device-i2c").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    Config::try_from(a).map_err(|e| e.to_string())
}

fn addr(a: u16) -> Address {
    Address::device(a).unwrap()
}

#[test]
fn upstream_device_list_syntax() {
    let c = config(&["-s", "/tmp/i2c.sock", "-c", "2", "-l", "6:32:41,9:37:6"]).unwrap();
    assert_eq!(c.sockets.count(), 2);
    assert_eq!(
        c.adapters,
        vec![
            AdapterSpec {
                bus: BusRef::Number(6),
                addrs: vec![addr(32), addr(41)]
            },
            AdapterSpec {
                bus: BusRef::Number(9),
                addrs: vec![addr(37), addr(6)]
            },
        ]
    );
}

#[test]
fn hex_addresses_and_adapter_names() {
    let c = config(&["-s", "/x", "-l", "SMBus stub driver:0x50:0x1A"]).unwrap();
    assert_eq!(c.adapters[0].bus, BusRef::Name("SMBus stub driver".into()));
    assert_eq!(c.adapters[0].addrs, vec![addr(0x50), addr(0x1a)]);
}

#[test]
fn simulate_alone_is_enough() {
    let c = config(&[
        "-s",
        "/tmp/vi2c.sock",
        "--simulate",
        "24c02@0x50",
        "--simulate",
        "ds1338@0x68",
    ])
    .unwrap();
    assert_eq!(
        c.simulated,
        vec![
            (Model::Eeprom24c02, addr(0x50)),
            (Model::Ds1338, addr(0x68))
        ]
    );
}

#[test]
fn rejects_bad_input_with_a_clear_message() {
    assert!(config(&["-s", "/x"]).unwrap_err().contains("no device"));
    assert!(
        config(&["-s", "/x", "-l", "1:0x78"])
            .unwrap_err()
            .contains("bad I2C address")
    );
    assert!(
        config(&["-s", "/x", "-l", "1:2"])
            .unwrap_err()
            .contains("bad I2C address")
    );
    assert!(
        config(&["-s", "/x", "-l", "1"])
            .unwrap_err()
            .contains("bad entry")
    );
    assert!(
        config(&["-s", "/x", "-l", ":0x50"])
            .unwrap_err()
            .contains("bad entry")
    );
    assert!(
        config(&["-s", "/x", "-l", "1:zz"])
            .unwrap_err()
            .contains("bad I2C address")
    );
    assert!(
        config(&["-s", "/x", "-l", "1:0x50,2:80"])
            .unwrap_err()
            .contains("more than once")
    );
    assert!(
        config(&["-s", "/x", "-l", "1:0x50", "--simulate", "24c02@0x50"])
            .unwrap_err()
            .contains("more than once")
    );
    assert!(
        config(&["-s", "/x", "--simulate", "24c08@0x50"])
            .unwrap_err()
            .contains("unknown model")
    );
    assert!(
        config(&["-s", "/x", "--simulate", "24c02"])
            .unwrap_err()
            .contains("MODEL@ADDR")
    );
    assert!(config(&["-l", "1:0x50"]).is_err());
    assert!(
        config(&["--fd", "5", "-c", "2", "-l", "1:0x50"])
            .unwrap_err()
            .contains("exactly one")
    );
}
