'use strict'

// Runs three kafkajs consumers in one consumer group against a cairn broker
// and writes, as JSON to CAIRN_RESULT_FILE, which values each consumed and
// which partitions each was given. The topic must exist and hold
// CAIRN_EXPECTED messages; the Go test that runs this script checks the
// result.
//
// Environment:
//   CAIRN_BROKER       host:port of the broker
//   CAIRN_TOPIC        topic to consume
//   CAIRN_GROUP        consumer group id
//   CAIRN_EXPECTED     number of messages to wait for
//   CAIRN_RESULT_FILE  where to write the JSON result
//
// Exits non-zero, with the reason on stderr, when a step fails or the
// messages do not all arrive within the time limit.

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const consumersCount = 3
const waitMs = 60000

function required (name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`environment variable ${name} is not set`)
  }
  return value
}

async function main () {
  const broker = required('CAIRN_BROKER')
  const topic = required('CAIRN_TOPIC')
  const groupId = required('CAIRN_GROUP')
  const expected = Number(required('CAIRN_EXPECTED'))
  const resultFile = required('CAIRN_RESULT_FILE')
  const kafka = new Kafka({ clientId: 'cairn-groups-test', brokers: [broker], logLevel: logLevel.ERROR })

  const members = []
  let total = 0
  let allArrived
  const arrived = new Promise(resolve => { allArrived = resolve })
  for (let i = 0; i < consumersCount; i++) {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 20000 })
    const member = { consumer, values: [], partitions: [] }
    consumer.on(consumer.events.GROUP_JOIN, event => {
      member.partitions = (event.payload.memberAssignment[topic] || []).slice().sort()
    })
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    members.push(member)
  }
  // Start all three before any consumes, so they join one generation.
  await Promise.all(members.map(member => member.consumer.run({
    autoCommitInterval: 100,
    eachMessage: async ({ message }) => {
      member.values.push(message.value.toString())
      total++
      if (total >= expected) {
        allArrived()
      }
    }
  })))
  const timer = setTimeout(() => allArrived(), waitMs)
  await arrived
  clearTimeout(timer)
  // A short grace period so a duplicate delivery would show in the result.
  await new Promise(resolve => setTimeout(resolve, 500))
  const result = members.map(member => ({ values: member.values, partitions: member.partitions }))
  await Promise.all(members.map(member => member.consumer.disconnect()))
  fs.writeFileSync(resultFile, JSON.stringify({ members: result }))
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
