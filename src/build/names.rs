//! Pure naming rules for built and preloaded images: registry paths and references, tags
//! that are stale, push digests read from the engine's status lines.

/// Pure: where a local image goes in the registry on `port`: its path without any registry
/// host, and its tag (`latest` when it has none).
pub fn registry_reference(image: &str, port: u16) -> (String, String) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (without_digest, "latest"),
    };
    let path = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => name,
    };
    (format!("localhost:{port}/{path}"), tag.to_string())
}

/// An RFC 3339 UTC time (`...:05.12Z`, fraction trimmed as Go prints it) as a string that
/// sorts chronologically: the fraction padded to nanoseconds.
pub(super) fn sortable_time(rfc3339: &str) -> String {
    let trimmed = rfc3339.trim_end_matches('Z');
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    format!("{whole}.{fraction:0<9}")
}

/// Tags to remove: all but the `keep` newest by creation time, never `current`.
pub(super) fn stale_tags<T: Ord>(tagged: &[(String, T)], current: &str, keep: usize) -> Vec<String> {
    let mut others: Vec<&(String, T)> = tagged.iter().filter(|(t, _)| t != current).collect();
    others.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    others.into_iter().skip(keep.saturating_sub(1)).map(|(t, _)| t.clone()).collect()
}

/// `localhost:5001/shop/api` → `shop/api`: the repository name as the registry's API sees it.
pub(super) fn registry_path(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((host, rest)) if host.contains(':') || host.contains('.') || host == "localhost" => rest,
        _ => repository,
    }
}

/// `repo:tag` → `repo` (a `:` inside the registry host is not a tag separator).
pub(super) fn repository_of(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

/// The engine's last push status reads `<tag>: digest: sha256:<hex> size: <n>`.
pub(super) fn parse_push_digest(status: &str) -> Option<String> {
    let rest = status.split("digest: ").nth(1)?;
    let digest = rest.split_whitespace().next()?;
    (digest.starts_with("sha256:") && digest.len() == 71).then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preloaded_images_keep_their_path_and_tag_under_the_local_registry() {
        assert_eq!(registry_reference("postgres:15.8", 5001), ("localhost:5001/postgres".into(), "15.8".into()));
        assert_eq!(
            registry_reference("samestack-test/postgres", 5001),
            ("localhost:5001/samestack-test/postgres".into(), "latest".into())
        );
        assert_eq!(registry_reference("ghcr.io/acme/db:1", 7), ("localhost:7/acme/db".into(), "1".into()));
        assert_eq!(registry_reference("localhost:5000/x/y:2", 7), ("localhost:7/x/y".into(), "2".into()));
        assert_eq!(registry_reference("acme/db@sha256:abc", 7), ("localhost:7/acme/db".into(), "latest".into()));
    }

    #[test]
    fn push_digest_is_parsed_from_the_final_status() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(parse_push_digest(&format!("0123abcd: digest: {d} size: 1234")), Some(d));
        assert_eq!(parse_push_digest("Pushed"), None);
    }

    #[test]
    fn stale_tags_keep_the_newest_and_the_current() {
        let tagged: Vec<(String, i64)> =
            [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("cur", 0)].iter().map(|(t, c)| (t.to_string(), *c)).collect();
        assert_eq!(stale_tags(&tagged, "cur", 3), vec!["b", "a"]);
        assert_eq!(stale_tags(&tagged, "cur", 1), vec!["d", "c", "b", "a"]);
        assert!(stale_tags(&tagged, "cur", 10).is_empty());
    }

    #[test]
    fn times_sort_chronologically_whatever_their_fraction_length() {
        let a = sortable_time("2026-11-22T04:50:01.12Z");
        let b = sortable_time("2026-11-22T04:50:01.123Z");
        let c = sortable_time("2026-11-22T04:50:02Z");
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn registry_paths_and_repositories() {
        assert_eq!(registry_path("localhost:5001/shop-api"), "shop-api");
        assert_eq!(registry_path("registry.local/a/b"), "a/b");
        assert_eq!(registry_path("shop/api"), "shop/api");
        assert_eq!(repository_of("localhost:5001/shop-api:0123456789ab"), "localhost:5001/shop-api");
        assert_eq!(repository_of("localhost:5001/shop-api"), "localhost:5001/shop-api");
    }
}
