'use strict';
// Registers one device against host-http with the Azure IoT Node.js device
// SDK, as published (azure-iot-provisioning-device + -http transport +
// azure-iot-security-x509). The SDK always connects to port 443; the only
// accommodation is an https.Agent, passed through azure-iot-http-base's
// Http#setOptions, that connects to the test port instead.
//
// Usage: node register.js PORT ID_SCOPE SERVER_CA.pem DEVICE_CHAIN.pem DEVICE.key REGISTRATION_ID
// Prints one JSON line: {"ok":true,"result":{...}} or
// {"ok":false,"name":"...","message":"...","statusCode":N}.

const fs = require('fs');
const https = require('https');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { X509Security } = require('azure-iot-security-x509');
const { Http: HttpBase } = require('azure-iot-http-base');

const [port, idScope, caPath, certPath, keyPath, registrationId] = process.argv.slice(2);
if (!registrationId) {
  console.error('usage: node register.js PORT ID_SCOPE SERVER_CA.pem DEVICE_CHAIN.pem DEVICE.key REGISTRATION_ID');
  process.exit(2);
}

class TestPortAgent extends https.Agent {
  createConnection(options, callback) {
    return super.createConnection({ ...options, port: Number(port) }, callback);
  }
}

const httpBase = new HttpBase();
httpBase.setOptions({
  http: { agent: new TestPortAgent({ keepAlive: false }) },
  ca: fs.readFileSync(caPath, 'utf8'),
});
const transport = new Http(httpBase);
const security = new X509Security(registrationId, {
  cert: fs.readFileSync(certPath, 'utf8'),
  key: fs.readFileSync(keyPath, 'utf8'),
});
const client = ProvisioningDeviceClient.create('localhost', idScope, transport, security);

const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, name: 'Timeout', message: 'no answer within 60 s' }));
  process.exit(1);
}, 60000);

client.register((err, result) => {
  clearTimeout(timer);
  if (err) {
    console.log(JSON.stringify({
      ok: false,
      name: err.name || (err.constructor && err.constructor.name),
      message: err.message,
      statusCode: err.response && err.response.statusCode,
      result: err.result,
    }));
  } else {
    console.log(JSON.stringify({ ok: true, result }));
  }
  process.exit(0);
});
