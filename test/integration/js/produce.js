'use strict'

// Produces to a cairn broker with kafkajs and writes what it sent, and where
// the broker acknowledged each message, as JSON to CAIRN_RESULT_FILE. The Go
// test that runs this script reads the topic back with franz-go and compares.
//
// Environment:
//   CAIRN_BROKER       host:port of the broker
//   CAIRN_TOPIC        topic to create and produce to (2 partitions)
//   CAIRN_RESULT_FILE  where to write the JSON result
//
// Exits non-zero, with the reason on stderr, when any step fails or an admin
// answer is not what a Kafka broker would give.

const fs = require('fs')
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const partitions = 2
const messagesPerSend = 20

function required (name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`environment variable ${name} is not set`)
  }
  return value
}

function check (condition, message) {
  if (!condition) {
    throw new Error(message)
  }
}

// messages builds one send's messages: explicit partitions (so each
// message's offset follows from the per-partition base offset), keys,
// a null key, headers and repetitive values so gzip has something to shrink.
function messages (label) {
  const out = []
  for (let i = 0; i < messagesPerSend; i++) {
    out.push({
      partition: i % partitions,
      key: i === 3 ? null : `${label}-key-${i}`,
      value: `${label} value ${i} ${'k'.repeat(i * 3)}`,
      headers: { client: 'kafkajs', label }
    })
  }
  return out
}

// acknowledged pairs each sent message with its offset: within one send,
// a partition's messages are appended in order from that partition's base
// offset.
function acknowledged (label, sent, metadata) {
  const bases = new Map(metadata.map((m) => [m.partition, BigInt(m.baseOffset)]))
  const next = new Map()
  return sent.map((message) => {
    check(bases.has(message.partition), `${label}: no acknowledgement for partition ${message.partition}`)
    const index = next.get(message.partition) || 0n
    next.set(message.partition, index + 1n)
    return {
      label,
      partition: message.partition,
      offset: (bases.get(message.partition) + index).toString(),
      key: message.key,
      value: message.value,
      headers: message.headers
    }
  })
}

async function produce (kafka, topic, label, options) {
  const producer = kafka.producer(options.producer)
  await producer.connect()
  try {
    const sent = messages(label)
    const metadata = await producer.send({
      topic,
      acks: -1,
      compression: options.compression,
      messages: sent
    })
    for (const m of metadata) {
      check(m.errorCode === 0, `${label}: partition ${m.partition} error code ${m.errorCode}`)
    }
    return acknowledged(label, sent, metadata)
  } finally {
    await producer.disconnect()
  }
}

async function main () {
  const broker = required('CAIRN_BROKER')
  const topic = required('CAIRN_TOPIC')
  const resultFile = required('CAIRN_RESULT_FILE')
  const kafka = new Kafka({
    clientId: 'cairn-kafkajs-integration',
    brokers: [broker],
    logLevel: logLevel.ERROR,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 3 }
  })

  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
    check(created === true, `createTopics returned ${created}, want true for a new topic`)
    // kafkajs logs TOPIC_ALREADY_EXISTS at error level before returning
    // false; that line on stderr is expected.
    const again = await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] })
    check(again === false, `createTopics of an existing topic returned ${again}, want false`)
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    check(topics.length === 1 && topics[0].name === topic, `fetchTopicMetadata: ${JSON.stringify(topics)}`)
    check(topics[0].partitions.length === partitions,
      `fetchTopicMetadata: ${topics[0].partitions.length} partitions, want ${partitions}`)

    const acked = []
    const plans = [
      ['plain-none', { compression: CompressionTypes.None, producer: {} }],
      ['plain-gzip', { compression: CompressionTypes.GZIP, producer: {} }],
      ['idempotent-none', { compression: CompressionTypes.None, producer: { idempotent: true, maxInFlightRequests: 1 } }],
      ['idempotent-gzip', { compression: CompressionTypes.GZIP, producer: { idempotent: true, maxInFlightRequests: 1 } }]
    ]
    for (const [label, options] of plans) {
      acked.push(...await produce(kafka, topic, label, options))
    }

    const offsets = await admin.fetchTopicOffsets(topic)
    const perPartition = acked.length / partitions
    for (const o of offsets) {
      check(o.low === '0', `fetchTopicOffsets: partition ${o.partition} low ${o.low}, want 0`)
      check(o.high === String(perPartition), `fetchTopicOffsets: partition ${o.partition} high ${o.high}, want ${perPartition}`)
    }
    fs.writeFileSync(resultFile, JSON.stringify({ offsets, messages: acked }, null, 1))
  } finally {
    await admin.disconnect()
  }
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error)
  process.exit(1)
})
