//! STS's answer to a forwarded `GetCallerIdentity`, parsed strictly.
//!
//! A tiny XML reader for the one shape STS answers with: an optional `<?xml ...?>`
//! declaration, then one root element; elements with attributes, text with the five
//! predefined entities and character references, whitespace between elements. Comments,
//! CDATA, DOCTYPE, processing instructions, text beside child elements, more than 8 levels
//! or 256 elements: refused. The identity is taken only from exactly one
//! `GetCallerIdentityResult` under a `GetCallerIdentityResponse` root, with exactly one
//! `Arn`, `Account` and `UserId`; the account is 12 digits, the ARN an `iam` or `sts`
//! ARN in an `aws` partition of that account. From a refusal only the error code is
//! kept, and only when it is a plain word.

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 8;
/// Most elements accepted.
const MAX_ELEMENTS: usize = 256;

/// One element: its name, its text (when it has no children) and its children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the only child called `name`, which must have no children itself.
    fn only_text<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut found = self.named(name);
        let one = found.next()?;
        if found.next().is_some() || !one.children.is_empty() {
            return None;
        }
        Some(&one.text)
    }
}

struct Reader<'a> {
    rest: &'a str,
    elements: usize,
}

impl<'a> Reader<'a> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r', '\n']);
    }

    fn eat(&mut self, prefix: &str) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn name(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.:-".contains(c)))
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at(end);
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || name.len() > 64 {
            return None;
        }
        self.rest = rest;
        Some(name)
    }

    /// `<?xml ...?>`, then the root element and nothing after it but whitespace.
    fn document(mut self) -> Option<Element> {
        self.skip_ws();
        if self.eat("<?xml") {
            let end = self.rest.find("?>")?;
            if self.rest.get(..end)?.contains(['<', '>']) {
                return None;
            }
            self.rest = self.rest.get(end + 2..)?;
            self.skip_ws();
        }
        let root = self.element(1)?;
        self.skip_ws();
        self.rest.is_empty().then_some(root)
    }

    fn element(&mut self, depth: usize) -> Option<Element> {
        self.elements += 1;
        if depth > MAX_DEPTH || self.elements > MAX_ELEMENTS || !self.eat("<") {
            return None;
        }
        let name = self.name()?;
        loop {
            let before = self.rest.len();
            self.skip_ws();
            if self.eat("/>") {
                return Some(Element {
                    name: name.to_owned(),
                    ..Element::default()
                });
            }
            if self.eat(">") {
                break;
            }
            if self.rest.len() == before {
                return None; // an attribute needs whitespace before it
            }
            self.name()?;
            if !self.eat("=") {
                return None;
            }
            let quote = if self.eat("\"") {
                '"'
            } else if self.eat("'") {
                '\''
            } else {
                return None;
            };
            let end = self.rest.find(quote)?;
            if self.rest.get(..end)?.contains(['<', '&']) {
                return None;
            }
            self.rest = self.rest.get(end + 1..)?;
        }
        let mut element = Element {
            name: name.to_owned(),
            ..Element::default()
        };
        let mut raw_text = String::new();
        loop {
            let end = self.rest.find('<')?;
            raw_text.push_str(self.rest.get(..end)?);
            self.rest = self.rest.get(end..)?;
            if self.eat("</") {
                if self.name()? != name {
                    return None;
                }
                self.skip_ws();
                if !self.eat(">") {
                    return None;
                }
                break;
            }
            if self.rest.starts_with("<!") || self.rest.starts_with("<?") {
                return None; // comments, CDATA, DOCTYPE, processing instructions
            }
            element.children.push(self.element(depth + 1)?);
        }
        let text = unescape(&raw_text)?;
        if element.children.is_empty() {
            element.text = text;
        } else if !text.trim().is_empty() {
            return None; // text beside child elements
        }
        Some(element)
    }
}

/// Text with `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` and `&#N;` / `&#xH;` replaced;
/// any other `&` refuses the document.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i)?);
        rest = rest.get(i + 1..)?;
        let end = rest.find(';')?;
        let entity = rest.get(..end)?;
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(n)?
            }
        };
        out.push(c);
        rest = rest.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

fn parse(xml: &str) -> Option<Element> {
    Reader {
        rest: xml,
        elements: 0,
    }
    .document()
}

/// Who STS says the caller is, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `arn:PARTITION:iam|sts::ACCOUNT:RESOURCE`.
    pub arn: String,
    /// 12 digits.
    pub account: String,
    /// The unique id (`AIDA...`, `AROA...:session`, or the account).
    pub user_id: String,
}

/// The identity in a successful answer; `None` unless it has exactly the expected shape.
pub fn caller_identity(xml: &str) -> Option<CallerIdentity> {
    let root = parse(xml)?;
    if root.name != "GetCallerIdentityResponse" {
        return None;
    }
    let mut results = root.named("GetCallerIdentityResult");
    let result = results.next()?;
    if results.next().is_some() {
        return None;
    }
    let arn = result.only_text("Arn")?.trim();
    let account = result.only_text("Account")?.trim();
    let user_id = result.only_text("UserId")?.trim();
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let user_id_ok = (1..=256).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_:-".contains(&b));
    if !(account_ok && user_id_ok && arn_ok(arn, account)) {
        return None;
    }
    Some(CallerIdentity {
        arn: arn.to_owned(),
        account: account.to_owned(),
        user_id: user_id.to_owned(),
    })
}

/// `arn:aws[-x[-y]]:iam|sts::ACCOUNT:RESOURCE`, at most 2048 characters of
/// `A-Z a-z 0-9 + = , . @ _ / : -`.
fn arn_ok(arn: &str, account: &str) -> bool {
    if arn.len() > 2048
        || !arn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/:-".contains(&b))
    {
        return false;
    }
    let Some(crate::domain::ArnParts {
        partition,
        service,
        region: "",
        account: acct,
        resource,
    }) = crate::domain::ArnParts::split(arn)
    else {
        return false;
    };
    let partition_ok = partition.strip_prefix("aws").is_some_and(|rest| {
        rest.split('-')
            .skip(1)
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
            && (rest.is_empty() || rest.starts_with('-'))
    });
    partition_ok && matches!(service, "iam" | "sts") && acct == account && !resource.is_empty()
}

/// STS's error code (`SignatureDoesNotMatch`, `ExpiredToken`, ...): 1 to 64 ASCII letters,
/// so it can be passed on to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsErrorCode(String);

impl StsErrorCode {
    /// `code` when it is 1 to 64 ASCII letters.
    pub fn parse(code: &str) -> Option<Self> {
        ((1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Self(code.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StsErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The code of an error answer (`<Error><Code>` at any depth); never its message.
pub fn error_code(xml: &str) -> Option<StsErrorCode> {
    fn find(e: &Element) -> Option<&str> {
        if e.name == "Error"
            && let Some(code) = e.only_text("Code")
        {
            return Some(code);
        }
        e.children.iter().find_map(find)
    }
    if let Some(code) = parse(xml).as_ref().and_then(find) {
        return StsErrorCode::parse(code.trim());
    }
    // Some STS stand-ins answer errors with markup the strict parser refuses; the code
    // alone is still safe to take: it must pass `StsErrorCode::parse` (letters only).
    let start = xml.find("<Code>")? + "<Code>".len();
    let end = start + xml.get(start..)?.find("</Code>")?;
    StsErrorCode::parse(xml.get(start..end)?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/orders-lambda/checkout-fn</Arn>
    <UserId>AROAEXAMPLE:checkout-fn</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

    #[test]
    fn the_documented_answer_parses() {
        assert_eq!(
            caller_identity(OK),
            Some(CallerIdentity {
                arn: "arn:aws:sts::123456789012:assumed-role/orders-lambda/checkout-fn".into(),
                account: "123456789012".into(),
                user_id: "AROAEXAMPLE:checkout-fn".into(),
            })
        );
        let gov = OK
            .replace("arn:aws:sts", "arn:aws-us-gov:sts")
            .replace("<Arn>", "<Arn> ");
        assert!(caller_identity(&gov).is_some());
        let user = OK.replace(
            "arn:aws:sts::123456789012:assumed-role/orders-lambda/checkout-fn",
            "arn:aws-cn:iam::123456789012:user/alice",
        );
        assert!(caller_identity(&user).is_some());
    }

    #[test]
    fn anything_else_is_refused() {
        let result = "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/a</Arn>\
                      <UserId>AIDA1</UserId><Account>123456789012</Account></GetCallerIdentityResult>";
        let wrap =
            |inner: &str| format!("<GetCallerIdentityResponse>{inner}</GetCallerIdentityResponse>");
        assert!(caller_identity(&wrap(result)).is_some());
        let bad = [
            // Two results, two ARNs, a missing field, another root.
            wrap(&format!("{result}{result}")),
            wrap(&result.replace(
                "<Account>",
                "<Arn>arn:aws:iam::123456789012:user/b</Arn><Account>",
            )),
            wrap(&result.replace("<UserId>AIDA1</UserId>", "")),
            format!("<ErrorResponse>{result}</ErrorResponse>"),
            // An identity hidden in a comment, CDATA or a DOCTYPE.
            wrap(&format!("<!-- {result} -->")),
            wrap(
                &result
                    .replace("<Arn>arn", "<Arn><![CDATA[arn")
                    .replace("a</Arn>", "a]]></Arn>"),
            ),
            format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{}", wrap(result)),
            wrap(&result.replace("user/a", "user/&e;")),
            // Unbalanced, trailing junk, text beside elements.
            wrap(result).replace("</GetCallerIdentityResponse>", ""),
            format!("{}<x/>", wrap(result)),
            wrap(&format!("junk{result}")),
            // Account not 12 digits; ARN of another account, service or partition.
            wrap(&result.replace("<Account>123456789012", "<Account>12345678901x")),
            wrap(&result.replace("iam::123456789012", "iam::999999999999")),
            wrap(&result.replace("arn:aws:iam", "arn:aws:s3")),
            wrap(&result.replace("arn:aws:iam", "arn:evil:iam")),
            wrap(&result.replace("arn:aws:iam", "arn:aws-:iam")),
            wrap(&result.replace("user/a", "user/a b")),
            wrap(&result.replace("user/a", "user/a&#0;")),
            wrap(&result.replace("AIDA1", "AIDA1<x/>")),
            String::new(),
        ];
        for xml in bad {
            assert_eq!(caller_identity(&xml), None, "{xml}");
        }
        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert_eq!(caller_identity(&deep), None);
    }

    #[test]
    fn only_a_plain_error_code_is_kept() {
        let answer = |code: &str| {
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>you said &lt;script&gt;</Message></Error></ErrorResponse>"
            )
        };
        assert_eq!(
            error_code(&answer("SignatureDoesNotMatch")).map(|c| c.to_string()),
            Some("SignatureDoesNotMatch".to_owned())
        );
        let wrapped = "<ErrorResponse><Errors><Error><Code>ExpiredToken</Code></Error></Errors></ErrorResponse>";
        assert_eq!(
            error_code(wrapped).map(|c| c.to_string()),
            Some("ExpiredToken".into())
        );
        for bad in ["<b>x</b>", "Code With Spaces", &"A".repeat(65), "", "x&#0;"] {
            assert_eq!(error_code(&answer(bad)), None, "{bad}");
        }
        assert_eq!(error_code("not xml"), None);
    }

    proptest::proptest! {
        #[test]
        fn the_reader_never_panics(s in "\\PC{0,200}") {
            let _ = caller_identity(&s);
            let _ = error_code(&s);
        }

        #[test]
        fn mutated_answers_never_panic(i in 0usize..600, c in proptest::char::any()) {
            let mut s: String = OK.chars().collect();
            let at = s.char_indices().nth(i % OK.chars().count()).map_or(0, |(b, _)| b);
            s.insert(at, c);
            let _ = caller_identity(&s);
        }
    }
}
