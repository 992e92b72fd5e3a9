// The load streams' own thread: see load-thread.js.

import { LoadEngine } from "./load-thread.js";

let engine = null;
// Reached only where module workers run: the page falls back to its own thread otherwise.
postMessage({ type: "ready" });

onmessage = (event) => {
  const message = event.data || {};
  if (message.type === "start") engine = new LoadEngine(message.options, (reply) => postMessage(reply));
  else if (engine && ["resize", "stop", "finish"].includes(message.type)) engine[message.type](...message.args);
};
