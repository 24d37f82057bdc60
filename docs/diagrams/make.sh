#!/bin/sh
# Draws the diagrams in this folder again (needs Graphviz's `dot`):
#   sh docs/diagrams/make.sh            (MODELC=.venv/bin/modelc to pick the command)
set -e
cd "$(dirname "$0")/../.."
MODELC=${MODELC:-modelc}
draw() {
    name=$1
    shift
    for ext in svg png; do "$MODELC" render "$@" -o "docs/diagrams/$name.$ext"; done
}
draw lenet5 specs/lenet5.model
draw resnet50-stage specs/resnet50.model
draw resnet50-block specs/resnet50.model --level block
draw resnet152-stage specs/resnet152.model
draw resnet50-vs-resnet101 --diff specs/resnet50.model specs/resnet101.model
draw unet specs/unet.model
draw transformer specs/transformer.model
draw transformer-block specs/transformer.model --level block
draw swin-t-stage specs/swin_t.model
