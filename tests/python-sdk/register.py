"""Registers one device against host-http over MQTT with the Azure IoT
Python device SDK (azure-iot-device, pinned in requirements.txt), as
published. The SDK dials port 8883 of the provisioning host: the test
serves MQTT there. The server's development CA is passed through the
SDK's documented `server_verification_cert` option.

Usage: python register.py ID_SCOPE SERVER_CA.pem DEVICE_CHAIN.pem DEVICE.key REGISTRATION_ID
Prints one JSON line: {"ok": true, "status": ..., "device_id": ..., "assigned_hub": ...,
"substatus": ...} or {"ok": false, "error": "<exception type>", "message": "..."}.
"""

import json
import sys

from azure.iot.device import ProvisioningDeviceClient, X509


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    id_scope, ca_path, cert_path, key_path, registration_id = sys.argv[1:]
    with open(ca_path, encoding="utf-8") as f:
        server_ca = f.read()
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host="localhost",
        registration_id=registration_id,
        id_scope=id_scope,
        x509=X509(cert_file=cert_path, key_file=key_path),
        server_verification_cert=server_ca,
    )
    try:
        result = client.register()
    except Exception as e:  # the SDK's errors are the answer under test
        cause = e.__cause__
        print(json.dumps({
            "ok": False,
            "error": type(e).__name__,
            "message": str(e),
            "cause": str(cause) if cause else None,
        }))
        return
    state = result.registration_state
    print(json.dumps({
        "ok": True,
        "status": result.status,
        "device_id": state.device_id if state else None,
        "assigned_hub": state.assigned_hub if state else None,
        "substatus": state.sub_status if state else None,
    }))


if __name__ == "__main__":
    main()
