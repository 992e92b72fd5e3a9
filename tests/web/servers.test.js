// The page's choice of server (web_client/servers.js): the pure parts.
import { test } from "node:test";
import assert from "node:assert/strict";

import { addressOn, nearest, serverAt } from "../../web_client/servers.js";

const north = { label: "North", url: "https://north.example.net", rttMs: 12.5 };
const south = { label: "South", url: "https://south.example.net:8443", rttMs: 3.1 };
const silent = { label: "Silent", url: "https://silent.example.net", rttMs: null };

test("the nearest server is the one with the least round trip; one that did not answer never is", () => {
  assert.equal(nearest([north, south, silent]), south);
  assert.equal(nearest([silent, north]), north);
  assert.equal(nearest([silent]), null);
  assert.equal(nearest([]), null);
  assert.equal(nearest([{ ...north, rttMs: undefined }]), null);
});

test("the server here is the one whose base URL is the page's origin, port included", () => {
  assert.equal(serverAt([north, south], "https://south.example.net:8443"), south);
  assert.equal(serverAt([north, south], "https://south.example.net"), null);
  assert.equal(serverAt([{ label: "Bad", url: "not a url" }], "https://north.example.net"), null);
});

test("moving to a server keeps the mode and schedule and names the server, so the page there does not choose again", () => {
  assert.equal(addressOn(south, "?mode=household&schedule=short"),
               "https://south.example.net:8443/?mode=household&schedule=short&server=South");
  assert.equal(addressOn({ label: "Oslo nord", url: "https://o.example" }, "?server=North"),
               "https://o.example/?server=Oslo+nord");
});
