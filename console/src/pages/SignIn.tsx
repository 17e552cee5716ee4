// Sign-in with an API key and secret (created with `mqferry api-key create`).
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { type Session, call, setSession } from "../api";
import { ErrorBox, asError } from "../ui";

export function SignIn(): JSX.Element {
  const [url, setUrl] = useState("");
  const [key, setKey] = useState("");
  const [secret, setSecret] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    const s: Session = { url: url.trim(), key: key.trim(), secret: secret.trim() };
    try {
      await call("GET", "/status", undefined, s);
      setSession(s);
    } catch (x) {
      const a = asError(x);
      setErr(a.status === 401 ? "The API key or secret is wrong." : a);
    } finally { setBusy(false); }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">mqferry console</h1>
        <p class="help">Sign in with an API key. Create one on the instance with
          <code> mqferry api-key create -c mqferry.yaml --name ops</code>.</p>
        <div class="field">
          <label for="signin-key">API key</label>
          <input id="signin-key" autocomplete="username" required value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="signin-secret">API secret</label>
          <input id="signin-secret" type="password" autocomplete="current-password" required value={secret}
            onInput={(e) => setSecret((e.target as HTMLInputElement).value)} />
        </div>
        <details>
          <summary>Another instance</summary>
          <div class="field">
            <label for="signin-url">API address</label>
            <input id="signin-url" type="url" placeholder="this instance" value={url}
              onInput={(e) => setUrl((e.target as HTMLInputElement).value)} />
            <small class="help">e.g. https://mqferry-2.example:18083 (that instance must allow this page's origin).</small>
          </div>
        </details>
        <ErrorBox error={typeof err === "string" ? err : err ? asError(err) : null} />
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
    </main>
  );
}
