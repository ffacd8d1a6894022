//! What ships never links the test kit: the product crates run the demo on `hearth-sim`, and
//! `hearth-testkit` is only ever a dev-dependency — read from `cargo metadata`, so a new crate or
//! a moved line is caught too.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_testkit_is_only_ever_a_dev_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    // The workspace as it is, so a renamed crate cannot make this pass by matching nothing.
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for expected in ["hearth-cli", "hearth-app", "hearth-sim", "hearth-testkit", "hearth-bench"] {
        assert!(names.contains(&expected), "no {expected} in the workspace: {names:?}");
    }
    let mut shipped = Vec::new();
    for package in packages {
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            // `kind` is null for [dependencies], "dev" or "build" otherwise.
            if dep["name"] == "hearth-testkit" && dep["kind"] != "dev" {
                let kind = dep["kind"].as_str().unwrap_or("normal");
                shipped.push(format!("{} ({kind})", package["name"].as_str().unwrap_or_default()));
            }
        }
    }
    assert!(shipped.is_empty(), "hearth-testkit is a normal or build dependency of: {shipped:?}");
    // And the demo runs on the simulation, which the shipped binaries do link.
    for product in ["hearth-cli", "hearth-app"] {
        let package = packages.iter().find(|p| p["name"] == product).unwrap();
        let deps = package["dependencies"].as_array().unwrap();
        let sim = deps.iter().any(|d| d["name"] == "hearth-sim" && d["kind"].is_null());
        assert!(sim, "{product} runs the demo household on hearth-sim, a normal dependency");
    }
}
