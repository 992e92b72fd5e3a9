// The start page: shows who sponsors this test server.
import { showSponsor } from "./sponsor.js";

showSponsor(document.getElementById("sponsor"));
