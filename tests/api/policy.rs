//! Property tests for subject globs and claim matching.

use proptest::prelude::*;
use rds_token_broker::policy::{claim_matches, glob};
use serde_json::json;

/// A deliberately naive reference: exponential recursion straight from the definition.
fn reference(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
    }
}

fn small_alphabet() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!['a', 'b', ':', '/', 'é']), 0..10)
        .prop_map(|v| v.into_iter().collect())
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', ':', '/', 'é', '*', '?']),
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn glob_agrees_with_the_reference(p in pattern(), t in small_alphabet()) {
        let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
        prop_assert_eq!(glob::matches(&p, &t), reference(&pc, &tc), "pattern {:?} text {:?}", p, t);
    }

    #[test]
    fn a_pattern_without_wildcards_matches_only_itself(s in "[^*?]{0,20}", t in "[^*?]{0,20}") {
        prop_assert!(glob::matches(&s, &s));
        prop_assert_eq!(glob::matches(&s, &t), s == t);
    }

    #[test]
    fn prefix_star_matches_every_extension(prefix in "[^*?]{0,12}", rest in any::<String>()) {
        let (pattern, text) = (format!("{prefix}*"), format!("{prefix}{rest}"));
        prop_assert!(glob::matches(&pattern, &text));
    }

    #[test]
    fn string_claims_match_exactly_or_by_membership(expected in "[a-z]{1,8}", other in "[a-z]{1,8}", extra in prop::collection::vec("[a-z]{1,8}", 0..5)) {
        let e = toml::Value::String(expected.clone());
        prop_assert!(claim_matches(&e, Some(&json!(expected))));
        prop_assert_eq!(claim_matches(&e, Some(&json!(other))), other == expected);
        let mut list = extra.clone();
        prop_assert_eq!(claim_matches(&e, Some(&json!(list))), extra.contains(&expected));
        list.push(expected.clone());
        prop_assert!(claim_matches(&e, Some(&json!(list))));
        prop_assert!(!claim_matches(&e, None));
    }

    #[test]
    fn claim_types_never_cross(n in any::<i64>(), b in any::<bool>()) {
        prop_assert!(claim_matches(&toml::Value::Integer(n), Some(&json!(n))));
        prop_assert!(!claim_matches(&toml::Value::String(n.to_string()), Some(&json!(n))));
        prop_assert!(!claim_matches(&toml::Value::Integer(n), Some(&json!(n.to_string()))));
        prop_assert!(claim_matches(&toml::Value::Boolean(b), Some(&json!(b))));
        prop_assert!(!claim_matches(&toml::Value::Boolean(b), Some(&json!(b.to_string()))));
    }
}
