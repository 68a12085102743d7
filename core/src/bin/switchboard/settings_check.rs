//! The settings table (`switchboard::bindings::settings`) against every front door: `Config`'s fields,
//! the `serve` flags, the `--config` TOML keys, the Node options (`node/src/config.rs`), the C
//! setters (`include/switchboard.h`) and `docs/limits.md`. Each check goes both ways, so a
//! name added to one place and not to the table fails too.
//!
//! `SWITCHBOARD_BLESS=1 cargo test -p switchboard --bin switchboard settings` rewrites the
//! docs table from the settings table.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, Command};
use switchboard::bindings::settings::{Kind, RUST_ONLY, SETTINGS};
use switchboard::Config;

use crate::serve::{FileSettings, ServeArgs};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `Config`'s field names, from its derived `Debug` (a new field shows up there by itself).
fn config_fields() -> BTreeSet<String> {
    let text = format!("{:#?}", Config::default());
    text.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .filter_map(|l| l.trim().split_once(':').map(|(name, _)| name.to_owned()))
        .collect()
}

fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn every_config_field_has_a_setting_or_a_reason() {
    let fields = config_fields();
    assert!(
        fields.len() > 40,
        "Config's Debug output changed: {fields:?}"
    );
    let mut covered = BTreeSet::new();
    for s in SETTINGS {
        for f in s.fields {
            assert!(
                fields.contains(*f),
                "setting {} names no Config field {f}",
                s.name
            );
            covered.insert((*f).to_owned());
        }
    }
    for (field, why) in RUST_ONLY {
        assert!(
            fields.contains(*field),
            "RUST_ONLY names no Config field {field}"
        );
        assert!(!why.is_empty(), "RUST_ONLY {field} needs a reason");
        covered.insert((*field).to_owned());
    }
    let missing: Vec<_> = fields.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "Config fields without a row in switchboard::bindings::settings::SETTINGS (or RUST_ONLY with a reason): {missing:?}"
    );
}

#[test]
fn every_setting_has_its_cli_flag_and_no_flag_is_unlisted() {
    let cmd = ServeArgs::augment_args(Command::new("serve"));
    let mut flags = BTreeSet::new();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            flags.insert(long.to_owned());
        }
        for alias in arg.get_all_aliases().unwrap_or_default() {
            flags.insert(alias.to_owned());
        }
    }
    let mut listed: BTreeSet<String> = ["host", "port", "config"].map(String::from).into();
    for s in SETTINGS {
        match s.cli {
            Some(flag) => {
                assert!(
                    flags.contains(flag),
                    "no --{flag} flag for setting {}",
                    s.name
                );
                // A list takes one value per flag: `--cors-origin A --cors-origin B`.
                if s.kind != Kind::TextList {
                    assert_eq!(
                        flag,
                        kebab(s.name),
                        "the flag of {} breaks the naming rule",
                        s.name
                    );
                }
                listed.insert(flag.to_owned());
            }
            None => assert!(
                !s.note.is_empty(),
                "{} has no CLI flag and no reason",
                s.name
            ),
        }
        for a in s
            .aliases
            .iter()
            .filter(|a| a.contains('-') || !a.contains('_'))
        {
            if flags.contains(*a) {
                listed.insert((*a).to_owned());
            }
        }
    }
    let unlisted: Vec<_> = flags.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "serve flags missing from the settings table: {unlisted:?}"
    );
}

/// Whether the `--config` file accepts `key` (a wrong-typed value fails differently from an
/// unknown key).
fn toml_knows(key: &str) -> bool {
    match toml::from_str::<FileSettings>(&format!("{key} = {{ x = 1 }}")) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("unknown field"),
    }
}

#[test]
fn every_setting_has_its_toml_key_and_no_key_is_unlisted() {
    for s in SETTINGS {
        assert_eq!(
            toml_knows(s.name),
            s.cli.is_some(),
            "TOML key {} (a --config file holds exactly what the flags do)",
            s.name
        );
        assert!(
            crate::serve::check_file_keys(&format!("{} = 1", s.name)).is_ok() || s.cli.is_none()
        );
        // Older TOML spellings (snake_case or one lowercase word) stay accepted.
        let snake = |a: &&&str| a.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        for alias in s.aliases.iter().filter(snake) {
            if s.cli.is_some() {
                assert!(
                    toml_knows(alias),
                    "TOML alias {alias} of {} is refused",
                    s.name
                );
            }
        }
    }
    // The other way: serde lists every field it knows when it meets an unknown one.
    let err = toml::from_str::<FileSettings>("zz_not_a_key = 1")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let expected = err
        .split("expected one of")
        .nth(1)
        .expect("serde lists the fields");
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    assert!(known.len() > 40, "{err}");
    for key in known {
        let in_table = ["host", "port"].contains(&key)
            || SETTINGS
                .iter()
                .any(|s| s.name == key || s.aliases.contains(&key));
        assert!(in_table, "TOML key {key} is not in the settings table");
    }
}

#[test]
fn every_setting_has_its_node_option_and_no_option_is_unlisted() {
    let source = read("node/src/config.rs");
    let options: BTreeSet<String> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(": Option<"))
        .map(|(name, _)| camel(name))
        .collect();
    let mut listed = BTreeSet::new();
    for s in SETTINGS {
        match s.node {
            Some(option) => {
                assert!(
                    options.contains(option),
                    "node/src/config.rs has no `{option}` ({})",
                    s.name
                );
                assert_eq!(
                    option,
                    camel(s.name),
                    "the Node name of {} breaks the naming rule",
                    s.name
                );
                listed.insert(option.to_owned());
            }
            None => assert!(
                !s.note.is_empty(),
                "{} has no Node option and no reason",
                s.name
            ),
        }
    }
    let unlisted: Vec<_> = options.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "Node options missing from the settings table: {unlisted:?}"
    );
}

/// C setters that take two settings at once, or whose name says what they take.
const C_GROUPED: [&str; 8] = [
    "sb_config_set_rate_limit",
    "sb_config_set_outbound_queue",
    "sb_config_set_yjs_limits",
    "sb_config_set_tls",
    "sb_config_add_cors_origin",
    "sb_config_set_jwt_public_key_pem",
    "sb_config_add_jwt_issuer",
    "sb_config_add_jwt_audience",
];

#[test]
fn every_setting_has_its_c_setter_and_no_setter_is_unlisted() {
    let header = read("include/switchboard.h");
    let setters: BTreeSet<String> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sb_config_set_") || w.starts_with("sb_config_add_"))
        // Host hooks and the C binding's own event queue are not engine settings.
        .filter(|w| !w.ends_with("_callback") && *w != "sb_config_add_app_event")
        .filter(|w| *w != "sb_config_set_event_queue_capacity")
        .map(str::to_owned)
        .collect();
    let mut listed = BTreeSet::new();
    for s in SETTINGS {
        let setter = s.c.unwrap_or_else(|| panic!("{} has no C setter", s.name));
        assert!(
            setters.contains(setter),
            "include/switchboard.h has no {setter} ({})",
            s.name
        );
        if !C_GROUPED.contains(&setter) {
            let unit = match s.kind {
                Kind::Millis => "_ms",
                Kind::Seconds => "_secs",
                _ => "",
            };
            assert_eq!(
                setter,
                format!("sb_config_set_{}{unit}", s.name),
                "naming rule"
            );
        }
        listed.insert(setter.to_owned());
    }
    let unlisted: Vec<_> = setters.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "C setters missing from the settings table: {unlisted:?}"
    );
}

const BEGIN: &str = "<!-- settings table: generated from core/src/settings/table.rs -->\n";
const END: &str = "<!-- end of settings table -->\n";

#[test]
fn docs_settings_table_is_generated_from_the_table() {
    let path = repo("docs/limits.md");
    let doc = read("docs/limits.md");
    let table = switchboard::bindings::settings::markdown_table();
    let (before, rest) = doc
        .split_once(BEGIN)
        .expect("docs/limits.md lacks the settings table marker");
    let (current, after) = rest
        .split_once(END)
        .expect("docs/limits.md lacks the end marker");
    if current != table {
        if std::env::var_os("SWITCHBOARD_BLESS").is_some() {
            let fresh = format!("{before}{BEGIN}{table}{END}{after}");
            std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            panic!(
                "docs/limits.md's settings table is stale; regenerate it with \
                 SWITCHBOARD_BLESS=1 cargo test -p switchboard --bin switchboard settings"
            );
        }
    }
}

#[test]
fn toml_typos_are_refused_with_the_nearest_key() {
    let err = crate::serve::check_file_keys("ratelimit = 5").unwrap_err();
    assert_eq!(err, "unknown key `ratelimit`; did you mean `rate_limit`?");
    let err = crate::serve::check_file_keys("pingInterval = 5").unwrap_err();
    assert_eq!(
        err,
        "unknown key `pingInterval`; did you mean `ping_interval`?"
    );
    let err = crate::serve::check_file_keys("bogus = 1").unwrap_err();
    assert_eq!(err, "unknown key `bogus`");
    // The old spelling stays accepted.
    assert_eq!(
        crate::serve::check_file_keys("cluster_heartbeat_ms = 500"),
        Ok(())
    );
}

#[test]
fn the_file_reaches_the_config_and_bad_values_name_the_flag() {
    let dir = std::env::temp_dir().join(format!("sb-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "jwt_secret = 'sixteen-bytes!!!'\ncluster_heartbeat_ms = 700\nmax_message_chars = 9\nhistory_limit = 3\nworkers = 2\n",
    )
    .unwrap_or_default();
    let mut args = ServeArgs::default();
    args.config = Some(file.clone());
    crate::serve::load_file(&mut args).unwrap_or_else(|e| panic!("{e}"));
    let c = crate::serve::config_from(&args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.cluster_heartbeat, std::time::Duration::from_millis(700));
    assert_eq!((c.max_message_chars, c.history_limit), (9, 3));
    assert_eq!(c.worker_threads, Some(2));

    std::fs::write(
        &file,
        "jwt_secret = 'sixteen-bytes!!!'\nmax_message_chars = 0\n",
    )
    .unwrap_or_default();
    let mut args = ServeArgs::default();
    args.config = Some(file.clone());
    crate::serve::load_file(&mut args).unwrap_or_else(|e| panic!("{e}"));
    let err = crate::serve::config_from(&args).err().unwrap_or_default();
    assert_eq!(
        err,
        "invalid `--max-message-chars`: must be at least 1, got 0"
    );

    std::fs::write(&file, "jwt_secret = ''\n").unwrap_or_default();
    let mut args = ServeArgs::default();
    args.config = Some(file.clone());
    crate::serve::load_file(&mut args).unwrap_or_else(|e| panic!("{e}"));
    let err = crate::serve::config_from(&args).err().unwrap_or_default();
    assert!(
        err.contains("`--jwt-secret` (or SWITCHBOARD_JWT_SECRET) is empty"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
