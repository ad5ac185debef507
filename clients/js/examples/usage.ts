// Type-checked in CI (tsc --noEmit -p examples) against the shipped declarations.
import { CueDecoder, GatewayClient, GatewayError, type Receipt } from "metadata-gateway-client";

export async function main(url: string, token: string): Promise<void> {
  const client = new GatewayClient(url, { token, maxRetries: 3 });
  const one = await client.send({ channel: "main-stage", type: "quiz", data: { question_id: "q1" } });
  const many = await client.send([{ channel: "main-stage", type: "caption", data: { text: "hi" } }]);
  const ids: string[] = [one.id, ...many.map((r) => r.id)];
  const cancelled = await client.cancel(one.id, "main-stage");
  const state: string = cancelled.state;
  for (const channel of await client.channels()) console.log(channel.alias ?? channel.channel, channel.pending);

  const stream = await client.stream({ reconnectDeadline: 60 });
  stream.addEventListener("receipt", (event) => {
    const receipt: Receipt = event.detail;
    console.log(receipt.op, receipt.ids);
  });
  try {
    await stream.send({ channel: "main-stage", type: "poll", data: { yes: 1 }, id: "p1" });
  } catch (error) {
    if (error instanceof GatewayError) console.log(error.status, error.code, error.retryAfter);
  }
  for await (const receipt of stream) {
    if (receipt.op === "sent") console.log(receipt.at);
    else console.log(receipt.reason);
    break;
  }
  await stream.close();

  const decoder = new CueDecoder({ rememberedIds: 100 });
  for (const item of decoder.decode('{"v":1,"c":[]}')) {
    if (item.kind === "cue") console.log(item.type, item.data);
    else console.log(item.text);
  }
  console.log(ids, state);
}
