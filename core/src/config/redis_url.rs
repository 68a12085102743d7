//! The Redis URL: one Redis (`redis://host:port/db`, as the `redis` crate reads it) or the
//! seed nodes of a Redis Cluster (`redis+cluster://[user:password@]host:port,host:port`).

/// Scheme of a Redis Cluster URL.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// What a Redis URL names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RedisTarget<'a> {
    /// One Redis, at this URL (left to the `redis` crate, unchanged).
    Single(&'a str),
    /// A Redis Cluster: a `redis://` URL per seed node, with the credentials given.
    Cluster(Vec<String>),
}

/// Reads a Redis URL; the error says what is wrong and what would work.
pub(crate) fn parse_redis_url(url: &str) -> Result<RedisTarget<'_>, String> {
    let url = url.trim();
    let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
        // Only the mistakes the cluster form invites; the crate judges the rest.
        let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = after_scheme.split(['/', '?']).next().unwrap_or_default();
        if authority.contains(',') {
            return Err(format!(
                "{url:?} lists several hosts: a Redis Cluster's seed nodes go after {CLUSTER_SCHEME} \
                 (e.g. {CLUSTER_SCHEME}10.0.0.1:7000,10.0.0.2:7000)"
            ));
        }
        return Ok(RedisTarget::Single(url));
    };
    if rest.contains("://") {
        return Err(format!(
            "{url:?} mixes schemes: give host:port pairs after one {CLUSTER_SCHEME}, without a scheme each"
        ));
    }
    let (hosts, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "{url:?}: a Redis Cluster URL takes no database or options after the hosts (a cluster has database 0 only)"
        ));
    }
    let (auth, hosts) = match hosts.rfind('@') {
        Some(i) => (&hosts[..=i], &hosts[i + 1..]),
        None => ("", hosts),
    };
    if hosts.trim().is_empty() {
        return Err(format!(
            "{url:?} names no host: list the seed nodes as host:port,host:port"
        ));
    }
    let mut seeds = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(format!("{url:?} has an empty entry in its host list"));
        }
        let (name, port) = split_port(host)
            .ok_or_else(|| format!("{url:?}: {host:?} has a bad port (host:port, port 1-65535)"))?;
        if name.is_empty() {
            return Err(format!("{url:?}: {host:?} has no host name"));
        }
        seeds.push(format!("redis://{auth}{name}:{port}"));
    }
    Ok(RedisTarget::Cluster(seeds))
}

/// `host:port`, `[v6]:port`, or a host alone (port 6379).
fn split_port(host: &str) -> Option<(&str, u16)> {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let name = &host[..inside.len() + 2];
        match after {
            "" => return Some((name, 6379)),
            p => (name, p.strip_prefix(':')?),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, port),
            None => return Some((host, 6379)),
        }
    };
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_lists_seed_nodes_with_the_credentials() {
        assert_eq!(
            parse_redis_url("redis+cluster://u:p@a:7000, b:7001,[::1]:7002,c"),
            Ok(RedisTarget::Cluster(vec![
                "redis://u:p@a:7000".into(),
                "redis://u:p@b:7001".into(),
                "redis://u:p@[::1]:7002".into(),
                "redis://u:p@c:6379".into(),
            ]))
        );
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6379/2"),
            Ok(RedisTarget::Single("redis://127.0.0.1:6379/2"))
        );
    }

    #[test]
    fn bad_cluster_urls_say_what_is_wrong() {
        let err = |u: &str| parse_redis_url(u).unwrap_err();
        assert!(err("redis+cluster://").contains("names no host"));
        assert!(err("redis+cluster://u:p@").contains("names no host"));
        assert!(err("redis+cluster://a:7000,,b:7000").contains("empty entry"));
        assert!(err("redis+cluster://a:70000").contains("bad port"));
        assert!(err("redis+cluster://a:x").contains("bad port"));
        assert!(err("redis+cluster://a:0").contains("bad port"));
        assert!(err("redis+cluster://a:7000,redis://b:7000").contains("mixes schemes"));
        assert!(err("redis://a:7000,b:7000").contains("redis+cluster://"));
        assert!(err("redis+cluster://a:7000/1").contains("no database"));
        assert!(err("redis+cluster://:7000").contains("no host name"));
    }

    #[test]
    fn config_validation_refuses_a_bad_cluster_url_by_setting_name() {
        let err = crate::Config::default()
            .redis_url("redis+cluster://a:7000,,b:7000")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid redis_url: "), "{err}");
        assert!(err.contains("empty entry"), "{err}");
        let ok = crate::Config::default().redis_url("redis+cluster://a:7000,b:7001");
        assert!(ok.validate().is_ok());
    }
}
