//! The app's tests: commands through Tauri's mock runtime (`commands`), and the real window
//! under Xvfb driven over WebDriver (`window`), both against the testkit's fake Telegram and
//! fake model on loopback; and the macOS bundle's configuration and plists (`macos`).

mod commands;
mod macos;
mod webdriver;
mod window;
