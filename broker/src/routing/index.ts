export * from './topic.js';
export * from './trie.js';
export * from './intersect.js';
export * from './route-table.js';
