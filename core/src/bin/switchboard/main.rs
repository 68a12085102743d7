//! `switchboard`: the standalone server, and a development token minter.

mod serve;
#[cfg(test)]
mod settings_check;
mod token;

use clap::{Parser, Subcommand};

/// The Switchboard real-time engine.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Socket.IO clients (rooms, presence, typing, messages, history).
    Serve(Box<serve::ServeArgs>),
    /// Mint a development JWT.
    Token(token::TokenArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Token(args) => token::run(args),
    };
    if let Err(message) = result {
        eprintln!("switchboard: error: {message}");
        std::process::exit(1);
    }
}
