// A module worker that runs household members' connections (household-persona.js),
// one per worker in the page, so one member's bulk download never delays another
// member's pings or their replies, and the page's drawing delays none of them.
//
//   page -> worker  {type: "open", persona}                      persona as POST /api/tests lists it (with url)
//   page -> worker  {type: "start", timeOrigin, baselineMs, loadMs}
//   page -> worker  {type: "stop"}                               cancel: close without reporting
//   worker -> page  whatever PersonaConnection reports (ready, failed, live, finished)

import { PersonaConnection } from "./household-persona.js";

const connections = new Map();

onmessage = (event) => {
  const message = event.data || {};
  if (message.type === "open") {
    const connection = new PersonaConnection(message.persona, (report) => postMessage(report));
    connections.set(message.persona.name, connection);
    connection.open();
  } else if (message.type === "start") {
    for (const connection of connections.values()) connection.start(message);
  } else if (message.type === "stop") {
    for (const connection of connections.values()) connection.stop();
    connections.clear();
  }
};
