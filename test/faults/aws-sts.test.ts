import { faultSuite } from "./fault-suite.ts";

faultSuite("aws_sts");
