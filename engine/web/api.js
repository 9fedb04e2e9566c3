// The ivos serve HTTP API as the editor uses it: JSON in and out, errors as ApiError with the
// server's message (never a silent failure), Server-Sent Events read through fetch (so that an
// API key can travel in the Authorization header, which EventSource cannot send).

export class ApiError extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
  /** A sentence for people: what the server said, and what to do where that is clear. */
  get readable() {
    if (this.status === 0) return this.message;
    const hints = {
      401: " Set the server's API key in Settings (the gear).",
      413: "",
      429: " The server is busy: try again in a moment.",
      503: " The server is starting: try again in a few seconds.",
    };
    return `${this.message}${hints[this.status] ?? ""}`;
  }
}

const KEY_STORAGE = "ivos.apiKey";

export class Api {
  constructor(base = "") {
    this.base = base;
    this.apiKey = localStorage.getItem(KEY_STORAGE) || "";
  }

  setKey(key) {
    this.apiKey = key.trim();
    if (this.apiKey) localStorage.setItem(KEY_STORAGE, this.apiKey);
    else localStorage.removeItem(KEY_STORAGE);
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  async raw(method, path, { json, form, signal, accept } = {}) {
    const init = { method, headers: this.headers(accept ? { Accept: accept } : {}), signal };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (form !== undefined) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", `Cannot reach the ivos server (${e.message}). Is it still running?`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async call(method, path, options = {}) {
    const response = await this.raw(method, path, options);
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, options) { return this.call("GET", path, options); }
  post(path, json, options = {}) { return this.call("POST", path, { ...options, json }); }
  del(path) { return this.call("DELETE", path); }

  /** Reads a job's Server-Sent Events until it ends; ``onEvent(type, data)`` per event.
   *  Returns the last data (the final job), or throws ApiError / AbortError. */
  async events(path, onEvent, signal) {
    const response = await this.raw("GET", path, { signal, accept: "text/event-stream" });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let type = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trim());
        }
        if (!data.length) continue; // a keep-alive comment
        last = JSON.parse(data.join("\n"));
        onEvent(type, last);
        if (type === "end") {
          reader.cancel().catch(() => {});
          return last;
        }
      }
    }
    return last;
  }

  /** POSTs a multipart ``form`` with upload progress (``onProgress(sentBytes, totalBytes)``);
   *  the answer's JSON, or ApiError with the server's message. */
  upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.base + path);
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      xhr.responseType = "text";
      xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded, e.lengthComputable ? e.total : 0);
      xhr.upload.onload = () => onProgress && onProgress(-1, -1); // all sent: the server decodes
      xhr.onerror = () => reject(new ApiError(0, "network", "Cannot reach the ivos server (the upload failed). Is it still running?"));
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
        const err = body && body.error;
        reject(err && err.message ? new ApiError(xhr.status, err.code || "error", err.message, err)
          : new ApiError(xhr.status, "http_" + xhr.status, `The server answered ${xhr.status} ${xhr.statusText}.`));
      };
      xhr.send(form);
    });
  }

  /** Downloads ``path`` as a file named by the server (Content-Disposition). */
  async download(path, fallbackName) {
    const response = await this.raw("GET", path);
    const blob = await response.blob();
    const disposition = response.headers.get("content-disposition") || "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    const name = match ? decodeURIComponent(match[1]) : fallbackName;
    saveBlob(blob, name);
    return { name, size: blob.size, type: blob.type };
  }
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: a proxy's page, say */
  }
  const err = body && body.error;
  if (err && err.message) {
    return new ApiError(response.status, err.code || "error", err.message, err);
  }
  return new ApiError(response.status, "http_" + response.status,
    `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".");
}
