//! Subject globs: `*` matches any run of characters (including none), `?` exactly one;
//! everything else matches itself. Linear-time, no regular expressions.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen, and where in `text` it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after_star, start)) => {
                    pi = after_star;
                    ti = start + 1;
                    star = Some((after_star, start + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn examples() {
        assert!(matches(
            "system:serviceaccount:orders:*",
            "system:serviceaccount:orders:api"
        ));
        assert!(!matches(
            "system:serviceaccount:orders:*",
            "system:serviceaccount:billing:api"
        ));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches(
            "repo:org/*:ref:refs/heads/main",
            "repo:org/app:ref:refs/heads/main"
        ));
        assert!(matches("u?er", "user"));
        assert!(!matches("u?er", "uer"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }
}
