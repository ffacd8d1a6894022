//! The app's tests: commands through Tauri's mock runtime (`commands`), and the real window
//! under Xvfb driven over WebDriver (`window`), both against the testkit's fake Telegram and
//! fake model on loopback; the Linux package installed and its binary run (`package`, as root);
//! and the macOS bundle's configuration and plists (`macos`).

mod commands;
mod macos;
mod package;
mod webdriver;
mod window;
