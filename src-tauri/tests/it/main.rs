//! The app's tests: commands through Tauri's mock runtime (`commands`), and the real window
//! under Xvfb driven over WebDriver (`window`), both against the testkit's fake Telegram and
//! fake model on loopback.

mod commands;
mod webdriver;
mod window;
