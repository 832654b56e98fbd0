//! Parsing the domain's command line (`StartInfo::cmdline`): whitespace-separated
//! `key=value` words and bare flags.
#![deny(unsafe_code)]

/// The value of the first `key=value` word, if any.
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|word| {
        let (k, v) = word.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// Whether a bare word `flag` (or `flag=…`) is present.
pub fn has(cmdline: &str, flag: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|w| w == flag || w.split_once('=').is_some_and(|(k, _)| k == flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_flags() {
        let c = "  mode=oob-read verbose x=1=2 ";
        assert_eq!(get(c, "mode"), Some("oob-read"));
        assert_eq!(get(c, "x"), Some("1=2"));
        assert_eq!(get(c, "verbose"), None);
        assert_eq!(get(c, "mod"), None);
        assert!(has(c, "verbose"));
        assert!(has(c, "mode"));
        assert!(!has(c, "oob-read"));
        assert_eq!(get("", "mode"), None);
    }
}
