//! An admin request's query string, as Envoy reads it: `&`-separated parameters,
//! percent-decoded (`+` is a space), a parameter without `=` is a flag (`?usedonly`),
//! unknown ones are ignored.

/// The decoded parameters, in order.
#[derive(Debug, Default)]
pub struct Query {
    params: Vec<(String, Option<String>)>,
}

impl Query {
    /// Parses the part of a target after `?` (empty: no parameters).
    pub fn parse(query: &[u8]) -> Query {
        let params = query
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.iter().position(|&b| b == b'=') {
                Some(eq) => (decode(&p[..eq]), Some(decode(&p[eq + 1..]))),
                None => (decode(p), None),
            })
            .collect();
        Query { params }
    }

    /// Whether the parameter is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.params.iter().any(|(n, _)| n == name)
    }

    /// The parameters' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(n, _)| n.as_str())
    }

    /// The first value of the parameter (a flag has the empty value).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// Percent-decodes (`+` as a space); an invalid escape stays as written; bytes that do
/// not form UTF-8 are replaced.
fn decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_values_and_escapes() {
        let q = Query::parse(
            b"usedonly&filter=%5E(server%5C.state%7Clistener_manager)&format=json&x=a+b&bad=%zz",
        );
        assert!(q.has("usedonly"));
        assert_eq!(q.get("usedonly"), Some(""));
        assert_eq!(q.get("filter"), Some(r"^(server\.state|listener_manager)"));
        assert_eq!(q.get("format"), Some("json"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("missing"), None);
        assert!(!Query::parse(b"").has(""));
    }
}
