// RUN: nnc-opt --split-input-file %s -p fold-constants | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'fold-constants{max-elements=2}' | filecheck %s --check-prefix=SMALL

// transpose(transpose(k) + 1) of constants folds to one constant k + 1 = (2..7).
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[K:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [3, 2], "0x0000004000004040000080400000A0400000C0400000E040">}>
// CHECK-NEXT:    %[[Y:.*]] = "nn.matmul"(%0, %[[K]])
// CHECK-NEXT:    func.return %[[Y]]
// With max-elements=2 the 6-element results are not folded.
// SMALL-LABEL: func.func @main
// SMALL-COUNT-2: "nn.transpose"

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3, 2], "0x0000803F0000004000004040000080400000A0400000C040">}> : () -> tensor<3x2xf32>
    %2 = "nn.transpose"(%1) <{perm = array<i64: 1, 0>}> : (tensor<3x2xf32>) -> tensor<2x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1], "0x0000803F">}> : () -> tensor<1x1xf32>
    %4 = "nn.add"(%2, %3) : (tensor<2x3xf32>, tensor<1x1xf32>) -> tensor<2x3xf32>
    %5 = "nn.transpose"(%4) <{perm = array<i64: 1, 0>}> : (tensor<2x3xf32>) -> tensor<3x2xf32>
    %6 = "nn.matmul"(%0, %5) : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>
    func.return %6 : tensor<2x2xf32>
  }
}

// -----

// Negative: the add has a non-constant operand.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.add"(%0, %1)
// SMALL-LABEL: func.func @main
// SMALL:         "nn.add"(%0, %1)

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000803F0000803F">}> : () -> tensor<3xf32>
    %2 = "nn.add"(%0, %1) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    func.return %2 : tensor<2x3xf32>
  }
}
