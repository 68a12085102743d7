//! `switchboard token`: mints development tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;

/// Arguments of `switchboard token`.
#[derive(Args)]
pub struct TokenArgs {
    /// HS256 secret to sign with.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The user id (`sub`).
    #[arg(long)]
    sub: String,
    /// Display name.
    #[arg(long)]
    username: Option<String>,
    /// Comma-separated room patterns the user may join (`team-*,lobby`).
    #[arg(long)]
    rooms: Option<String>,
    /// Lifetime: a number with s, m, h or d (`90s`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m, 1h or 7d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}` has an unknown unit; use s, m, h or d")),
    };
    Ok(n * factor)
}

/// Prints a signed token.
pub fn run(args: TokenArgs) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = json!({ "sub": args.sub, "iat": now, "exp": now + args.ttl });
    if let Some(u) = args.username {
        claims["username"] = json!(u);
    }
    if let Some(r) = args.rooms {
        let rooms: Vec<&str> = r
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        claims["rooms"] = json!(rooms);
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(args.secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign token: {e}"))?;
    println!("{token}");
    Ok(())
}
