//! The URLs the configuration names: the snapshot store and upstreams.

/// Checks that a URL is `http://authority[/path]` and returns it as a URI.
/// A store URL: `http://` or `https://`, with a host.
pub fn parse_store_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        Some("http" | "https") => Err(format!("{url:?}: no host")),
        Some(other) => Err(format!(
            "{url:?}: scheme {other:?} is not supported; use https:// or http://"
        )),
        None => Err(format!(
            "{url:?}: give a full URL such as https://store.example/portcullis/latest.json"
        )),
    }
}

pub fn parse_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported; use http:// or https://"
            ));
        }
        None => {
            return Err(format!(
                "{url:?}: give a full URL such as http://127.0.0.1:3000"
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(uri)
}
