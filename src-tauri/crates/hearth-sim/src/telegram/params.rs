//! Request decoding the way the Bot API does it: the token and method from the path, parameters
//! merged from the URL query and a JSON, form-urlencoded or multipart body, and values coerced
//! from strings (form and query carry everything as text; Telegram accepts `"42"` for 42 and a
//! JSON-encoded string for an object).

use serde_json::{Map, Value};

use crate::multipart::{self, Part, header_param};

/// Splits `/bot<token>/<method>` (percent-decoded); `None` for any other path.
pub(crate) fn split_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    let token = percent_decode(token, false);
    let method = percent_decode(method, false);
    if method.is_empty() || method.contains('/') {
        return None;
    }
    Some((token, method))
}

/// Decodes `%XX` escapes (and `+` as space in form data); bad escapes stay as they are.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_urlencoded(s: &str, into: &mut Map<String, Value>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(
            percent_decode(k, true),
            Value::String(percent_decode(v, true)),
        );
    }
}

/// Merges the query and the body into one parameter object; the body wins on a clash. A file
/// part of a multipart body shows in the parameters as `"<file NAME, N bytes>"` and is kept, whole,
/// in the second value (by field name), for the methods that take uploads (`sendVoice`).
/// `Err` is the description of a 400.
pub(crate) fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Map<String, Value>, Vec<Part>), String> {
    let mut params = Map::new();
    let mut files = Vec::new();
    if let Some(q) = query {
        parse_urlencoded(q, &mut params);
    }
    let raw_content_type = content_type.unwrap_or_default();
    let content_type = raw_content_type.to_ascii_lowercase();
    let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((params, files));
    }
    if content_type.starts_with("application/json") || (content_type.is_empty() && looks_like_json)
    {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => params.extend(map),
            Ok(_) => return Err("Bad Request: parameters must be a JSON object".to_owned()),
            Err(e) => {
                return Err(format!(
                    "Bad Request: can't parse JSON encoded request: {e}"
                ));
            }
        }
    } else if content_type.starts_with("multipart/form-data") {
        let bad = || "Bad Request: can't parse multipart/form-data request".to_owned();
        let boundary = header_param(raw_content_type, "boundary")
            .ok_or_else(|| "Bad Request: multipart boundary is missing".to_owned())?;
        for part in multipart::parse(body, &boundary).map_err(|()| bad())? {
            let value = match &part.file_name {
                Some(file) => format!("<file {file}, {} bytes>", part.bytes.len()),
                None => part.text(),
            };
            params.insert(part.name.clone(), Value::String(value));
            if part.file_name.is_some() {
                files.push(part);
            }
        }
    } else {
        parse_urlencoded(&String::from_utf8_lossy(body), &mut params);
    }
    Ok((params, files))
}

/// Typed access to the merged parameters, with Telegram's leniency about strings.
pub(crate) struct Params<'a>(pub &'a Map<String, Value>);

impl Params<'_> {
    /// `Ok(None)` when absent or null; `Err(())` when present but not an integer.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or(()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    /// Like [`Params::int`] but a bad value counts as absent (what Telegram does for optional
    /// numbers such as `offset`).
    pub fn int_or(&self, key: &str, default: i64) -> i64 {
        self.int(key).ok().flatten().unwrap_or(default)
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Strings as they are; numbers and booleans in their JSON spelling.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
            Some(Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1")
            }
            _ => false,
        }
    }

    /// An object or array, given directly or JSON-encoded in a string. `Err(())` when present
    /// but not decodable.
    pub fn json(&self, key: &str) -> Result<Option<Value>, ()> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map(Some).map_err(|_| ()),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_splitting() {
        assert_eq!(
            split_path("/bot1:abc/getMe"),
            Some(("1:abc".into(), "getMe".into()))
        );
        assert_eq!(
            split_path("/bot1%3Aabc/getMe"),
            Some(("1:abc".into(), "getMe".into()))
        );
        assert_eq!(split_path("/bot1:abc/"), None);
        assert_eq!(split_path("/bot1:abc/a/b"), None);
        assert_eq!(split_path("/file/bot1/x"), None);
        assert_eq!(split_path("/bot1:abc"), None);
    }

    #[test]
    fn merges_query_form_json_and_multipart() {
        let p = parse_params(Some("chat_id=1&text=a+b%21"), None, b"").unwrap().0;
        assert_eq!(Value::Object(p), json!({"chat_id":"1","text":"a b!"}));
        let p = parse_params(
            Some("chat_id=1"),
            Some("application/json"),
            br#"{"chat_id":2,"x":true}"#,
        )
        .unwrap()
        .0;
        assert_eq!(Value::Object(p), json!({"chat_id":2,"x":true}));
        let p = parse_params(
            None,
            Some("application/x-www-form-urlencoded"),
            b"a=1&b=%ZZ",
        )
        .unwrap()
        .0;
        assert_eq!(Value::Object(p), json!({"a":"1","b":"%ZZ"}));
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n5\r\n--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XX--\r\n";
        let (p, files) = parse_params(None, Some("multipart/form-data; boundary=XX"), body).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!((files[0].name.as_str(), files[0].bytes.as_slice()), ("doc", &b"hello"[..]));
        assert_eq!(
            Value::Object(p),
            json!({"chat_id":"5","doc":"<file a.txt, 5 bytes>"})
        );
        assert!(parse_params(None, Some("application/json"), b"{nope").is_err());
        assert!(parse_params(None, Some("application/json"), b"[1]").is_err());
        assert!(parse_params(None, Some("multipart/form-data; boundary=XX"), b"garbage").is_err());
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(percent_decode("a%4", false), "a%4");
    }

    #[test]
    fn coercion() {
        let m = json!({"a":"42","b":7,"c":"x","d":"true","e":"[1,2]","f":{"k":1},"g":"{bad"});
        let Value::Object(m) = m else { unreachable!() };
        let p = Params(&m);
        assert_eq!(p.int("a"), Ok(Some(42)));
        assert_eq!(p.int("b"), Ok(Some(7)));
        assert_eq!(p.int("c"), Err(()));
        assert_eq!(p.int("zz"), Ok(None));
        assert!(p.bool("d"));
        assert_eq!(p.str("b").as_deref(), Some("7"));
        assert_eq!(p.json("e"), Ok(Some(json!([1, 2]))));
        assert_eq!(p.json("f"), Ok(Some(json!({"k":1}))));
        assert_eq!(p.json("g"), Err(()));
    }
}
