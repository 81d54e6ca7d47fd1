//! Where a browser form POST comes from (checklist 42, beside the CSRF token): `Sec-Fetch-Site`
//! and `Origin`, read off the request by the HTTP layer.

/// True when a form POST may come from our own pages (checklist 42, with the CSRF token).
///
/// `Sec-Fetch-Site`, when the browser sends it, decides: only `same-origin`. Without it, an
/// `Origin` must be the issuer's. `Origin: null` is what browsers send for our own forms, since
/// every page is `Referrer-Policy: no-referrer`, so it is accepted like a missing one.
pub fn origin_allowed(issuer: &str, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        return site == "same-origin";
    }
    match origin {
        None | Some("null") => true,
        Some(o) => url::Url::parse(issuer)
            .map(|u| u.origin().ascii_serialization() == o)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    const ISSUER: &str = "https://auth.example";

    #[test]
    fn browser_form_posts_from_our_pages_are_allowed() {
        // Chromium and Firefox under Referrer-Policy: no-referrer.
        assert!(origin_allowed(ISSUER, Some("null"), Some("same-origin")));
        assert!(origin_allowed(ISSUER, Some(ISSUER), Some("same-origin")));
        assert!(origin_allowed(ISSUER, Some(ISSUER), None));
        assert!(origin_allowed(ISSUER, None, None), "non-browser clients");
    }

    #[test]
    fn cross_site_form_posts_are_refused() {
        assert!(!origin_allowed(ISSUER, Some("null"), Some("cross-site")));
        assert!(!origin_allowed(ISSUER, Some(ISSUER), Some("same-site")));
        assert!(!origin_allowed(ISSUER, None, Some("cross-site")));
        assert!(!origin_allowed(ISSUER, Some("https://evil.example"), None));
        assert!(!origin_allowed(
            ISSUER,
            Some("https://auth.example:8443"),
            None
        ));
    }
}
