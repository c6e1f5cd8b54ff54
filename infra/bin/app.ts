import { App } from "aws-cdk-lib";
import { defineDemoApp } from "../demo/demo-app.ts";

defineDemoApp(new App());
