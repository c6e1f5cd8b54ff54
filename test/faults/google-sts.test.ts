import { faultSuite } from "./fault-suite.ts";

faultSuite("google_sts");
