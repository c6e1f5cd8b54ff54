import { App } from "aws-cdk-lib";
import { defineDemoApp } from "../lib/demo-app.ts";

defineDemoApp(new App());
