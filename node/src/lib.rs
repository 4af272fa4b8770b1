//! Node.js addon for shmap (placeholder).
