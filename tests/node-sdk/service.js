'use strict';
// Drives host-http's management API with the Azure IoT DPS service SDK for
// Node.js, as published (azure-iot-provisioning-service): creates the given
// individual enrollments, reads one back, updates it with its etag (and
// is refused with a stale one), queries with "SELECT * FROM …",
// and runs the cleanup loop of Microsoft's C# sample (query a page, delete
// each enrollment on it with its etag, ask for the next page) until the
// service says there is no next page. The SDK always connects to port 443;
// the only accommodation is the documented second constructor argument, a
// RestApiClient whose azure-iot-http-base Http connects to the test port
// and trusts the test server's CA.
//
// Usage: node service.js PORT SERVER_CA.pem POLICY_NAME POLICY_KEY ENROLLMENTS.json GROUP_CA.pem
// ENROLLMENTS.json: [{"registrationId": "...", "certificate": "PEM"}, ...]
// Prints one JSON line: {"ok":true,...} or {"ok":false,"message":"..."}.

const fs = require('fs');
const https = require('https');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { RestApiClient, Http } = require('azure-iot-http-base');
const { SharedAccessSignature } = require('azure-iot-common');

const [port, caPath, policyName, policyKey, enrollmentsPath, groupCaPath] = process.argv.slice(2);
if (!groupCaPath) {
  console.error('usage: node service.js PORT SERVER_CA.pem POLICY_NAME POLICY_KEY ENROLLMENTS.json GROUP_CA.pem');
  process.exit(2);
}

class TestPortAgent extends https.Agent {
  createConnection(options, callback) {
    return super.createConnection({ ...options, port: Number(port) }, callback);
  }
}

const host = 'localhost';
const config = {
  host,
  sharedAccessSignature: SharedAccessSignature.create(host, policyName, policyKey, Math.floor(Date.now() / 1000) + 3600),
};
const http = new Http();
http.setOptions({
  http: { agent: new TestPortAgent({ keepAlive: false }) },
  ca: fs.readFileSync(caPath, 'utf8'),
});
const client = new ProvisioningServiceClient(config, new RestApiClient(config, 'attest-test', http));

async function main() {
  const wanted = JSON.parse(fs.readFileSync(enrollmentsPath, 'utf8'));
  const enrollment = (e) => ({
    registrationId: e.registrationId,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: e.certificate } } } },
  });
  // runBulkEnrollmentOperation's promise form never settles in this SDK
  // version (it calls back only when given a callback): use the callback form.
  const runBulk = (operation) => new Promise((resolve, reject) => {
    client.runBulkEnrollmentOperation(operation, (err, result) => (err ? reject(err) : resolve(result)));
  });
  // The first ten in one bulk operation (DPS's limit per call), the rest one by one.
  const bulk = await runBulk({ mode: 'create', enrollments: wanted.slice(0, 10).map(enrollment) });
  for (const e of wanted.slice(10)) {
    await client.createOrUpdateIndividualEnrollment(enrollment(e));
  }
  // Creating an existing one again is refused, entry by entry.
  const again = await runBulk({ mode: 'create', enrollments: [enrollment(wanted[0])] });
  const one = (await client.getIndividualEnrollment(wanted[0].registrationId)).responseBody;
  const mechanism = (await client.getIndividualEnrollmentAttestationMechanism(wanted[0].registrationId)).responseBody;
  // Updates carry the etag read (If-Match): one with the current etag
  // applies; one with the etag it replaced is refused.
  const updated = (await client.createOrUpdateIndividualEnrollment({ ...one, provisioningStatus: 'disabled' })).responseBody;
  let stale;
  try {
    await client.createOrUpdateIndividualEnrollment({ ...one, provisioningStatus: 'enabled' });
    stale = 'applied';
  } catch (err) {
    stale = err.response && err.response.statusCode;
  }
  const after = (await client.getIndividualEnrollment(wanted[0].registrationId)).responseBody;
  await client.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: 'line-a',
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: fs.readFileSync(groupCaPath, 'utf8') } } } },
  });
  const groupMechanism = (await client.getEnrollmentGroupAttestationMechanism('line-a')).responseBody;
  const groups = await client.createEnrollmentGroupQuery({ query: 'SELECT * FROM enrollmentGroups' }, 10).next();
  const group = (await client.getEnrollmentGroup('line-a')).responseBody;
  await client.deleteEnrollmentGroup(group);

  // The cleanup loop: read a page, delete what is on it, ask for the next.
  const query = client.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 10);
  const seen = [];
  let pages = 0;
  while (query.hasMoreResults) {
    const page = (await query.next()).responseBody;
    pages += 1;
    for (const enrollment of page) {
      seen.push(enrollment.registrationId);
      await client.deleteIndividualEnrollment(enrollment);
    }
    if (pages > 100) throw new Error('more than 100 pages');
  }
  const left = (await client.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }).next()).responseBody;
  return {
    ok: true,
    created: wanted.length,
    pages,
    seen,
    left: left.map((e) => e.registrationId),
    groups: groups.responseBody.map((g) => g.enrollmentGroupId),
    bulk,
    again,
    info: one.attestation.x509.clientCertificates.primary.info,
    mechanism: mechanism.type,
    update: {
      status: updated.provisioningStatus,
      etagChanged: updated.etag !== one.etag,
      stale,
      after: after.provisioningStatus,
    },
    groupMechanism: groupMechanism.x509.signingCertificates.primary.info.subjectName,
  };
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, message: 'no answer within 120 s' }));
  process.exit(1);
}, 120000);

main().then(
  (r) => { clearTimeout(timer); console.log(JSON.stringify(r)); },
  (err) => {
    clearTimeout(timer);
    console.log(JSON.stringify({
      ok: false,
      name: err.name,
      message: err.message,
      statusCode: err.response && err.response.statusCode,
      body: err.responseBody,
    }));
  },
);
