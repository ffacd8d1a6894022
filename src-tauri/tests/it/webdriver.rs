//! Just enough W3C WebDriver to drive the real app window: a virtual display (Xvfb), a session
//! bus, `tauri-driver` in front of Debian's WebKitWebDriver, and a session that is always
//! deleted — dropping [`Window`] ends the session and stops everything it started.

use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Window {
    http: reqwest::Client,
    base: String,
    session: String,
    display: String,
    shots: PathBuf,
    // Dropped in this order after the session is deleted.
    driver: Child,
    xvfb: Child,
}

/// A found element.
#[derive(Clone)]
pub struct El(String);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_display() -> u32 {
    (90..200).find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()).expect("a free X display")
}

fn need(tool: &str, hint: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([dirs_home().join(".cargo/bin")])
        .map(|d| d.join(tool))
        .find(|p| p.exists());
    found.unwrap_or_else(|| panic!("{tool} is needed for the window tests: {hint} (scripts/setup installs it)"))
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl Window {
    /// Opens the app at `app` with `env` on a fresh virtual display. Screenshots go to `shots`.
    pub async fn open(app: &Path, env: &[(&str, String)], shots: &Path) -> Window {
        let xvfb_bin = need("Xvfb", "apt-get install xvfb");
        let driver_bin = need("tauri-driver", "cargo install tauri-driver --version '^2' --locked");
        need("WebKitWebDriver", "apt-get install webkit2gtk-driver");
        need("dbus-run-session", "apt-get install dbus");
        let n = free_display();
        let display = format!(":{n}");
        let xvfb = Command::new(xvfb_bin)
            .args([&display, "-screen", "0", "1100x760x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not come up on {display}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let port = free_port();
        let native = free_port();
        let mut cmd = Command::new("dbus-run-session");
        cmd.arg("--").arg(driver_bin).args(["--port", &port.to_string(), "--native-port", &native.to_string()]);
        cmd.env("DISPLAY", &display).env("GDK_BACKEND", "x11").env("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let driver = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).process_group(0).spawn().expect("start tauri-driver");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "tauri-driver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "wry",
            "tauri:options": { "application": app.display().to_string() }
        }}});
        let reply: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = reply["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {reply}")).to_owned();
        std::fs::create_dir_all(shots).unwrap();
        Window { http, base, session, display, shots: shots.to_owned(), driver, xvfb }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let reply: Value = req.send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        match reply["value"].get("error") {
            Some(err) => Err(format!("{err}: {}", reply["value"]["message"])),
            None => Ok(reply["value"].clone()),
        }
    }

    async fn find_now(&self, css: &str) -> Result<El, String> {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        Ok(El(v[ELEMENT].as_str().ok_or("no element id")?.to_owned()))
    }

    /// Waits up to 20 s for an element matching a CSS selector.
    pub async fn find(&self, css: &str) -> El {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.find_now(css).await {
                Ok(el) => return el,
                Err(e) if Instant::now() > deadline => panic!("no element {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn tid(&self, id: &str) -> El {
        self.find(&format!("[data-testid=\"{id}\"]")).await
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.find_now(css).await.is_ok()
    }

    pub async fn click(&self, id: &str) {
        let el = self.tid(id).await;
        self.click_el(&el, id).await;
    }

    /// Clicks a found element once it is enabled; `what` names it in a failure. When something is
    /// drawn over it (a toast in the window's corner), it is brought to the middle of the window
    /// and clicked again, until the click lands or 20 s have passed.
    pub async fn click_el(&self, el: &El, what: &str) {
        self.wait_enabled(el, what).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.call(reqwest::Method::POST, &format!("/element/{}/click", el.0), Some(json!({}))).await {
                Ok(_) => return,
                Err(e) if e.contains("intercepted") && Instant::now() < deadline => {
                    let center = json!({"script": "arguments[0].scrollIntoView({block: 'center'})", "args": [{ELEMENT: el.0}]});
                    let _ = self.call(reqwest::Method::POST, "/execute/sync", Some(center)).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {what}: {e}"),
            }
        }
    }

    async fn wait_enabled(&self, el: &El, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.call(reqwest::Method::GET, &format!("/element/{}/enabled", el.0), None).await.ok().and_then(|v| v.as_bool()).unwrap_or(false) {
            assert!(Instant::now() < deadline, "{id} stayed disabled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces the text of an input.
    pub async fn fill(&self, id: &str, text: &str) {
        let el = self.tid(id).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", el.0), Some(json!({}))).await.unwrap_or_else(|e| panic!("clear {id}: {e}"));
        self.call(reqwest::Method::POST, &format!("/element/{}/value", el.0), Some(json!({"text": text}))).await.unwrap_or_else(|e| panic!("type into {id}: {e}"));
    }

    pub async fn text_of(&self, el: &El) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", el.0), None).await.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    pub async fn text(&self, id: &str) -> String {
        let el = self.tid(id).await;
        self.text_of(&el).await
    }

    /// Whether the checkbox `id` is ticked.
    pub async fn is_checked(&self, id: &str) -> bool {
        let el = self.tid(id).await;
        self.call(reqwest::Method::GET, &format!("/element/{}/selected", el.0), None).await.ok().and_then(|v| v.as_bool()).unwrap_or(false)
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let el = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", el.0), None).await.ok().and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Scrolls the element matching `css` into view, for a screenshot of it.
    pub async fn script_scroll(&self, css: &str) {
        let script = format!("document.querySelector({css:?})?.scrollIntoView({{block: 'start'}})");
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []})))
            .await
            .unwrap_or_else(|e| panic!("scroll to {css}: {e}"));
    }

    /// Waits up to `secs` for the text of the element `css` to satisfy `ok`; panics with what it
    /// last saw.
    pub async fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        loop {
            if let Ok(el) = self.find_now(css).await {
                last = self.text_of(&el).await;
                if ok(&last) {
                    return last;
                }
            }
            assert!(Instant::now() < deadline, "{css} never showed what was expected; last text: {last:?}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until the page's transitions and animations that end have ended and the result has
    /// been painted (two animation frames later) — what a screenshot waits for, instead of a
    /// guess at how long a transition takes. Endless animations (a spinner) are not waited for.
    pub async fn painted(&self) {
        let script = "const done = arguments[arguments.length - 1];
            const all = document.getAnimations ? document.getAnimations() : [];
            const ending = all.filter(a => a.playState === 'running'
                && Number.isFinite(a.effect ? a.effect.getComputedTiming().endTime : Infinity));
            Promise.all(ending.map(a => a.finished.catch(() => null)))
                .then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(ending.length))));";
        self.call(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []})))
            .await
            .unwrap_or_else(|e| panic!("wait for the page to be painted: {e}"));
    }

    /// Saves what is on the display (the real pixels, via ImageMagick's `import`) as `<name>.png`,
    /// once the page is [`painted`](Self::painted).
    pub async fn screenshot(&self, name: &str) {
        self.painted().await;
        let path = self.shots.join(format!("{name}.png"));
        let status = Command::new("import")
            .args(["-display", &self.display, "-window", "root", path.to_str().unwrap()])
            .status()
            .expect("run ImageMagick import (apt-get install imagemagick)");
        assert!(status.success(), "screenshot {name} failed");
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Always end the session, or the app keeps running.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), reqwest::Client::new().delete(url).send()).await })
            })
            .join()
        });
        // SAFETY: signalling the process group we created for the driver and its bus.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGTERM) };
        let _ = self.driver.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}
