//! The management API's SAS token parser: any header is accepted or refused
//! with a reason, never a panic; a token that verifies was signed with the
//! policy key (so it must be one `token` could have made for that key).
#![no_main]

use attest_dps::sas::SasPolicy;
use attest_dps::sas::{DEFAULT_MAX_TOKEN_LIFETIME, token, verify};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let policy = SasPolicy {
        key_name: "owner".into(),
        primary_key: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=".into(),
        rights: None,
    };
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_780_272_000;
    if verify(
        header,
        std::slice::from_ref(&policy),
        now,
        DEFAULT_MAX_TOKEN_LIFETIME,
    )
    .is_ok()
    {
        // Only a correctly keyed token gets here: the fuzzer cannot forge
        // HMAC-SHA256, so this is reached only from the seed.
        assert!(header.contains("skn=owner"), "{header}");
    }
    // Round trip for whatever resource the input spells: what `token`
    // mints, `verify` accepts (a too-long token is refused when minted).
    if let Ok(minted) = token(&policy, header, now + 60) {
        let verified = verify(
            &minted,
            std::slice::from_ref(&policy),
            now,
            DEFAULT_MAX_TOKEN_LIFETIME,
        );
        assert_eq!(verified, Ok(()), "{minted}");
    }
});
