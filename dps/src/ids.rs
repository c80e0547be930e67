//! Identifier rules (DPS): which enrollment group IDs and CA certificate
//! names the management API accepts. Registration IDs are the core's
//! (`policy_host::check_registration_id`), because devices name them too.
//!
//! | identifier | length | characters | first and last |
//! |---|---|---|---|
//! | registration ID | 1–128 | `a-z A-Z 0-9 - . _ :` (case-insensitive) | letter or digit |
//! | enrollment group ID | 1–128 | `a-z A-Z 0-9 - . _ :` (case-sensitive) | letter or digit |
//! | CA certificate name | 1–256 | `a-z A-Z 0-9 - . _` | letter or digit |
//! | device ID (`deviceId`) | 1–128 | IoT Hub's: `a-z A-Z 0-9` and ``- . + % _ # * ? ! ( ) , : = @ $ '`` | any |

/// Checks an enrollment group ID; the error says the rule.
pub fn check_group_id(id: &str) -> Result<(), String> {
    check(id, "enrollmentGroupId", 128, &['-', '.', '_', ':'])
}

/// Checks a CA certificate name; the error says the rule.
pub fn check_certificate_name(name: &str) -> Result<(), String> {
    check(name, "certificate name", 256, &['-', '.', '_'])
}

/// Checks a `deviceId` against IoT Hub's device ID rules (the hub the
/// device is assigned to must accept it).
pub fn check_device_id(id: &str) -> Result<(), String> {
    const SPECIALS: &str = "-.+%_#*?!(),:=@$'";
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
    {
        let shown: String = id.chars().take(40).collect();
        return Err(format!(
            "deviceId {shown:?} must be 1 to 128 characters of a-z A-Z 0-9 {SPECIALS} (IoT Hub's device ID rules)"
        ));
    }
    Ok(())
}

fn check(id: &str, what: &str, max: usize, specials: &[char]) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || specials.contains(&c);
    let alnum_ends = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if id.len() > max || !id.chars().all(valid) || !alnum_ends {
        let shown: String = id.chars().take(40).collect();
        let specials: String = specials.iter().map(|c| format!(" {c}")).collect();
        return Err(format!(
            "{what} {shown:?} must be 1 to {max} characters of a-z A-Z 0-9{specials}, beginning and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_and_names() {
        for ok in ["line-a", "Line_B.2", "a", "x:1"] {
            assert!(check_group_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a.",
            "a b",
            "a/b",
            "a\u{e9}",
            ":a",
            &"a".repeat(129),
        ] {
            assert!(check_group_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_certificate_name("root-ca.v2").is_ok());
        assert!(check_device_id("sensor-7@line(a)").is_ok());
        for bad in ["", "a b", "a/b", "a\u{e9}", &"a".repeat(129)] {
            assert!(check_device_id(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a:b", "a ", "_a", &"a".repeat(257)] {
            assert!(check_certificate_name(bad).is_err(), "{bad:?}");
        }
    }
}
