import { describe, expect, it } from "vitest";
import { actionLabel, actionQuery } from "./format";

describe("audit actions in the console's words", () => {
  it("shows the server's node.* actions as machine.* and reads filters back", () => {
    expect(actionLabel("node.rename")).toBe("machine.rename");
    expect(actionLabel("policy.update")).toBe("policy.update");
    expect(actionLabel("nodes.other")).toBe("nodes.other");
    expect(actionQuery("machine.")).toBe("node.");
    expect(actionQuery("machine.routes")).toBe("node.routes");
    expect(actionQuery("user.role")).toBe("user.role");
  });
});
