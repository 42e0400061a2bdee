'use strict'

// Authenticates to a cairn broker with kafkajs over SASL, produces one
// message per mechanism, and checks that a wrong password is refused.
//
// Environment:
//   CAIRN_BROKER    host:port of the broker
//   CAIRN_TOPIC     topic to produce to
//   CAIRN_USER      user with a SCRAM-SHA-512 credential
//   CAIRN_PASSWORD  its password
//
// Exits non-zero, with the reason on stderr, when a step fails.

const { Kafka, logLevel } = require('kafkajs')

function required (name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`environment variable ${name} is not set`)
  }
  return value
}

function client (mechanism, username, password) {
  return new Kafka({
    clientId: 'cairn-kafkajs-sasl',
    brokers: [required('CAIRN_BROKER')],
    sasl: { mechanism, username, password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 }
  })
}

async function main () {
  const topic = required('CAIRN_TOPIC')
  const user = required('CAIRN_USER')
  const password = required('CAIRN_PASSWORD')
  for (const mechanism of ['scram-sha-512', 'plain']) {
    const producer = client(mechanism, user, password).producer({ allowAutoTopicCreation: true })
    await producer.connect()
    await producer.send({ topic, messages: [{ key: mechanism, value: `from kafkajs over ${mechanism}` }] })
    await producer.disconnect()
  }
  const wrong = client('scram-sha-512', user, 'not-the-password').admin()
  let refused = false
  try {
    await wrong.connect()
    await wrong.listTopics()
  } catch (e) {
    refused = /SASL|[Aa]uthentication/.test(`${e.name} ${e.message} ${e.type || ''}`)
    if (!refused) {
      throw new Error(`wrong password failed for another reason: ${e.name}: ${e.message}`)
    }
  } finally {
    await wrong.disconnect()
  }
  if (!refused) {
    throw new Error('a wrong password was accepted')
  }
}

main().catch((e) => {
  console.error(e.stack || e)
  process.exit(1)
})
