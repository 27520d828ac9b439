import { assertEquals } from "../../tests/assert.ts";
import { copiesOfTrain, judgeModelAgreement } from "./generation.ts";

Deno.test("judgeModelAgreement: the judge's verdict against the model's prediction for the same codes", () => {
  const verdicts = [
    { codes: [1, 2, 3], judged: "bird" },
    { codes: [4], judged: "door" },
    { codes: [5, 5], judged: "laser" },
    { codes: [7, 8], judged: "bird" }, // the model predicted nothing for it
  ];
  // In another order, as the bucket artifact sorts clips by length.
  const predictions = [
    { codes: Uint32Array.from([5, 5]), predicted: "bird" },
    { codes: [1, 2, 3], predicted: "bird" },
    { codes: [4], predicted: "door" },
  ];
  assertEquals(judgeModelAgreement(verdicts, predictions), { agreed: 2, compared: 3 });
  assertEquals(judgeModelAgreement(verdicts, []), { agreed: 0, compared: 0 });
});

Deno.test("copiesOfTrain: samples whose codes equal a train clip's, and the others' recognised share", () => {
  const train = [[1, 2, 3], [4, 4], [9]];
  const samples = [
    { codes: [1, 2, 3], requested: "a", judged: "a" }, // a copy
    { codes: [1, 2], requested: "a", judged: "a" }, // a prefix: not a copy
    { codes: [4, 4, 4], requested: "b", judged: "a" },
    { codes: [9], requested: "b", judged: "b" }, // a copy
    { codes: [], requested: "b", judged: "(silence)" },
  ];
  assertEquals(copiesOfTrain(train, samples), {
    copies: 2,
    share: 2 / 5,
    recognised_not_copies: 1 / 3,
  });
  assertEquals(copiesOfTrain(train, samples.slice(0, 1)), {
    copies: 1,
    share: 1,
    recognised_not_copies: null,
  });
  assertEquals(copiesOfTrain(train, []), { copies: 0, share: null, recognised_not_copies: null });
  assertEquals(copiesOfTrain(train, [{ codes: [9] }, { codes: [8] }]).share, 1 / 2);
});
