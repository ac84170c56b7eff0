//! HTTP Basic authentication of the REST API (`api.restapi.basic_auth_credentials`), both
//! sides: the daemon's check (`authHandler` and `verifyBasicAuth` of `api/common/api.go`) and
//! the ctl's credentials (`--basic-auth user[:password]`, `parseCredentials` of
//! `cmd/ipfs-cluster-ctl/main.go`).
//!
//! Bearer (JWT) tokens, which the real API also accepts once basic auth is on, are not
//! modelled: any Bearer token is answered as an invalid one.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::Error;
use super::http::{Request, Response};
use super::logging;

/// The realm of every `WWW-Authenticate` header of the real API.
const REALM: &str = "Restricted IPFS Cluster API";

/// `user → password` pairs that may use the API.
pub type Credentials = BTreeMap<String, String>;

/// `api.restapi.basic_auth_credentials` as the real config reads it: absent or `null` is no
/// authentication; an object of strings is the credentials (a `null` password reads as empty);
/// an empty object, or any other JSON, is refused with the real message.
pub fn credentials_from(value: Option<&Value>) -> Result<Option<Credentials>, Error> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(Error::ApiConfigUnmarshal {
                detail: format!(
                    "json: cannot unmarshal {} into Go struct field jsonConfig.basic_auth_credentials of type map[string]string",
                    super::pin::kind(other)
                ),
            })
        }
    };
    let mut credentials = Credentials::new();
    for (user, password) in map {
        let password = match password {
            Value::String(p) => p.clone(),
            // encoding/json leaves a string untouched when it meets null.
            Value::Null => String::new(),
            other => {
                return Err(Error::ApiConfigUnmarshal {
                    detail: format!(
                        "json: cannot unmarshal {} into Go struct field jsonConfig.basic_auth_credentials of type string",
                        super::pin::kind(other)
                    ),
                })
            }
        };
        credentials.insert(user.clone(), password);
    }
    if credentials.is_empty() {
        return Err(Error::ApiConfigInvalid {
            detail: "restapi.basic_auth_creds should be null or have at least one entry".into(),
        });
    }
    Ok(Some(credentials))
}

/// The daemon's check of one request: `None` lets it through (no credentials configured, a
/// CORS preflight, `GET /health`, or valid Basic credentials), `Some` is the 401 to send.
pub fn check(credentials: Option<&Credentials>, req: &Request) -> Option<Response> {
    let credentials = credentials?;
    if req.method == "OPTIONS" || (req.method == "GET" && req.path == "/health") {
        return None;
    }
    let authorization = req.header("authorization").unwrap_or("");
    if let Some((user, password)) = basic_auth(authorization) {
        if verify(credentials, &user, &password) {
            return None;
        }
        return Some(unauthorized(
            &[www_authenticate("Basic", None)],
            "unauthorized: access denied",
        ));
    }
    if is_bearer(authorization) {
        return Some(unauthorized(
            &[www_authenticate("Bearer", Some("invalid_token"))],
            "unauthorized: invalid token",
        ));
    }
    Some(unauthorized(
        &[
            www_authenticate("Bearer", None),
            www_authenticate("Basic", None),
        ],
        "unauthorized: no auth provided",
    ))
}

/// `verifyBasicAuth`: an empty user or password never matches.
fn verify(credentials: &Credentials, user: &str, password: &str) -> bool {
    !user.is_empty() && !password.is_empty() && credentials.get(user).is_some_and(|p| p == password)
}

/// `SendResponse` of an error: the challenges (under Go's canonical header name), then
/// `{"code":401,"message":…}` and a newline (the JSON encoder's), logged as the real API logs it.
fn unauthorized(challenges: &[String], message: &str) -> Response {
    logging::error(
        "restapi",
        &format!("sending error response: 401: {message}"),
    );
    let mut response = Response::json(
        401,
        json!({"code": 401, "message": message}).to_string() + "\n",
    );
    for challenge in challenges {
        response
            .headers
            .push(("Www-Authenticate".into(), challenge.clone()));
    }
    response
}

/// `wwwAuthenticate(auth, realm, error, "")`.
fn www_authenticate(scheme: &str, error: Option<&str>) -> String {
    let mut text = format!("{scheme} realm=\"{REALM}\"");
    if let Some(error) = error {
        text.push_str(&format!(", error=\"{error}\""));
    }
    text
}

/// Go's `Request.BasicAuth`: "Basic " (any case), standard base64 of `user:password`.
pub fn basic_auth(authorization: &str) -> Option<(String, String)> {
    let prefix = authorization.get(..6)?;
    if !prefix.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let decoded = base64_decode(&authorization[6..])?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn is_bearer(authorization: &str) -> bool {
    authorization
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
}

/// The `Authorization` header value the Go client sends (`SetBasicAuth`).
pub fn authorization(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// The ctl's `parseCredentials`: `user[:password]`, split at the first colon.
pub fn parse_credentials(input: &str) -> (String, String) {
    match input.split_once(':') {
        Some((user, password)) => (user.to_string(), password.to_string()),
        None => (input.to_string(), String::new()),
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with the padding Go's `StdEncoding` requires; `None` if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = text.bytes().filter(|b| !b"\r\n".contains(b)).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &chunk[..4 - pad] {
            let v = ALPHABET.iter().position(|a| *a == b)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, authorization: Option<&str>) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            query: BTreeMap::new(),
            headers: authorization
                .map(|a| vec![("Authorization".to_string(), a.to_string())])
                .unwrap_or_default(),
        }
    }

    fn admin() -> Credentials {
        Credentials::from([("admin".to_string(), "s3cret".to_string())])
    }

    fn challenges(response: &Response) -> Vec<&str> {
        response
            .headers
            .iter()
            .filter(|(name, _)| name == "Www-Authenticate")
            .map(|(_, value)| value.as_str())
            .collect()
    }

    #[test]
    fn absent_or_null_credentials_mean_no_authentication() {
        assert_eq!(credentials_from(None).unwrap(), None);
        assert_eq!(credentials_from(Some(&Value::Null)).unwrap(), None);
        let value = json!({"admin": "s3cret", "ro": null});
        let credentials = credentials_from(Some(&value)).unwrap().unwrap();
        assert_eq!(credentials["admin"], "s3cret");
        assert_eq!(credentials["ro"], "");
    }

    #[test]
    fn an_empty_map_is_refused_with_the_real_message() {
        let err = credentials_from(Some(&json!({}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "restapi.basic_auth_creds should be null or have at least one entry"
        );
    }

    #[test]
    fn other_json_is_refused_as_encoding_json_refuses_it() {
        let err = credentials_from(Some(&json!("admin"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal string into Go struct field jsonConfig.basic_auth_credentials of type map[string]string"
        );
        let err = credentials_from(Some(&json!({"admin": 5}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal number into Go struct field jsonConfig.basic_auth_credentials of type string"
        );
    }

    #[test]
    fn without_credentials_every_request_passes() {
        assert!(check(None, &request("GET", "/id", None)).is_none());
    }

    #[test]
    fn a_request_without_authorization_gets_both_challenges() {
        let response = check(Some(&admin()), &request("GET", "/id", None)).unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(
            response.body,
            "{\"code\":401,\"message\":\"unauthorized: no auth provided\"}\n"
        );
        assert_eq!(
            challenges(&response),
            [
                "Bearer realm=\"Restricted IPFS Cluster API\"",
                "Basic realm=\"Restricted IPFS Cluster API\""
            ]
        );
    }

    #[test]
    fn wrong_credentials_are_denied_with_the_basic_challenge() {
        for (user, password) in [("admin", "wrong"), ("root", "s3cret"), ("admin", "")] {
            let header = authorization(user, password);
            let response = check(Some(&admin()), &request("GET", "/id", Some(&header))).unwrap();
            assert_eq!(
                response.body,
                "{\"code\":401,\"message\":\"unauthorized: access denied\"}\n"
            );
            assert_eq!(
                challenges(&response),
                ["Basic realm=\"Restricted IPFS Cluster API\""]
            );
        }
    }

    #[test]
    fn right_credentials_pass_whatever_the_scheme_case() {
        let header = authorization("admin", "s3cret");
        assert_eq!(header, "Basic YWRtaW46czNjcmV0");
        assert!(check(Some(&admin()), &request("GET", "/id", Some(&header))).is_none());
        let lower = header.replacen("Basic", "basic", 1);
        assert!(check(Some(&admin()), &request("POST", "/pins/x", Some(&lower))).is_none());
    }

    #[test]
    fn preflight_and_health_need_no_credentials() {
        assert!(check(Some(&admin()), &request("OPTIONS", "/id", None)).is_none());
        assert!(check(Some(&admin()), &request("GET", "/health", None)).is_none());
        assert!(check(Some(&admin()), &request("POST", "/health", None)).is_some());
    }

    #[test]
    fn malformed_basic_is_no_auth_and_a_bearer_token_is_invalid() {
        let response = check(Some(&admin()), &request("GET", "/id", Some("Basic !!!"))).unwrap();
        assert!(response.body.contains("unauthorized: no auth provided"));
        let response = check(Some(&admin()), &request("GET", "/id", Some("Bearer abc"))).unwrap();
        assert!(response.body.contains("unauthorized: invalid token"));
        assert_eq!(
            challenges(&response),
            ["Bearer realm=\"Restricted IPFS Cluster API\", error=\"invalid_token\""]
        );
    }

    #[test]
    fn the_ctl_splits_credentials_at_the_first_colon() {
        assert_eq!(
            parse_credentials("admin:s3:cret"),
            ("admin".into(), "s3:cret".into())
        );
        assert_eq!(parse_credentials("admin"), ("admin".into(), String::new()));
        assert_eq!(parse_credentials(":pw"), (String::new(), "pw".into()));
    }

    #[test]
    fn base64_round_trips_and_refuses_what_go_refuses() {
        for text in ["", "a", "ab", "abc", "admin:s3cret", "ü:é"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert!(base64_decode("YWI").is_none());
        assert!(base64_decode("YW=I").is_none());
        assert!(base64_decode("Y*I=").is_none());
    }
}
