import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";

async function start() {
  // `VITE_MOCK=1 npm run dev` runs the UI in a plain browser against a fake household.
  if (import.meta.env.DEV && import.meta.env.VITE_MOCK === "1") await (await import("./dev/mock")).installMock();
  mount(App, { target: document.getElementById("app")! });
}
start();
