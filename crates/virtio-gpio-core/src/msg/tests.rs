//! Unit tests of the parent module (kept out of the production file).

use super::*;

#[test]
fn config_layout() {
    let c = Config {
        ngpio: 0x0102,
        names_size: 0x0a0b0c0d,
    };
    assert_eq!(c.to_bytes(), [0x02, 0x01, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a]);
}

#[test]
fn bounded_read_never_panics() {
    let space = [1u8, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(bounded_read(&space, 0, 8), &space);
    assert_eq!(bounded_read(&space, 2, 2), &[3, 4]);
    assert_eq!(bounded_read(&space, 6, 100), &[7, 8]);
    assert_eq!(bounded_read(&space, 8, 1), &[] as &[u8]);
    assert_eq!(bounded_read(&space, u32::MAX, u32::MAX), &[] as &[u8]);
    assert_eq!(bounded_read(&space, 0, u32::MAX), &space);
    assert_eq!(bounded_read(&space, 3, 0), &[] as &[u8]);
}

#[test]
fn parse_each_message_type() {
    use msg_type::*;
    assert_eq!(
        parse_request(&encode_request(GET_LINE_NAMES, 77, 99)),
        Ok(Command::GetLineNames)
    );
    assert_eq!(
        parse_request(&encode_request(GET_DIRECTION, 3, 0)),
        Ok(Command::GetDirection { line: 3 })
    );
    assert_eq!(
        parse_request(&encode_request(SET_DIRECTION, 0x1234, 2)),
        Ok(Command::SetDirection {
            line: 0x1234,
            direction: Direction::In
        })
    );
    assert_eq!(
        parse_request(&encode_request(GET_VALUE, 5, 0)),
        Ok(Command::GetValue { line: 5 })
    );
    assert_eq!(
        parse_request(&encode_request(SET_VALUE, 5, 1)),
        Ok(Command::SetValue {
            line: 5,
            value: true
        })
    );
    assert_eq!(
        parse_request(&encode_request(SET_IRQ_TYPE, 6, 8)),
        Ok(Command::SetIrqType {
            line: 6,
            irq: IrqType::LevelLow
        })
    );
}

#[test]
fn parse_rejects_bad_fields() {
    use msg_type::*;
    assert_eq!(parse_request(&[]), Err(RequestError::BadLength(0)));
    assert_eq!(parse_request(&[1; 7]), Err(RequestError::BadLength(7)));
    assert_eq!(parse_request(&[1; 9]), Err(RequestError::BadLength(9)));
    assert_eq!(
        parse_request(&encode_request(0, 0, 0)),
        Err(RequestError::UnknownType(0))
    );
    assert_eq!(
        parse_request(&encode_request(7, 0, 0)),
        Err(RequestError::UnknownType(7))
    );
    assert_eq!(
        parse_request(&encode_request(SET_DIRECTION, 0, 3)),
        Err(RequestError::BadDirection(3))
    );
    assert_eq!(
        parse_request(&encode_request(SET_VALUE, 0, 2)),
        Err(RequestError::BadValue(2))
    );
    assert_eq!(
        parse_request(&encode_request(SET_VALUE, 0, u32::MAX)),
        Err(RequestError::BadValue(u32::MAX))
    );
    for bad in [5, 6, 7, 9, 16, u32::MAX] {
        assert_eq!(
            parse_request(&encode_request(SET_IRQ_TYPE, 0, bad)),
            Err(RequestError::BadIrqType(bad))
        );
    }
}

#[test]
fn response_lengths() {
    assert_eq!(Command::GetLineNames.response_len(10), 11);
    assert_eq!(Command::GetLineNames.response_len(0), 1);
    assert_eq!(Command::GetValue { line: 0 }.response_len(10), 2);
    assert_eq!(encode_response(Status::Err, 0), [1, 0]);
}

#[test]
fn parse_event_requests() {
    assert_eq!(parse_event_request(&[3, 1]), Ok(0x0103));
    assert_eq!(
        parse_event_request(&[3]),
        Err(EventRequestError::BadLength(1))
    );
    assert_eq!(
        parse_event_request(&[3, 0, 0]),
        Err(EventRequestError::BadLength(3))
    );
}
