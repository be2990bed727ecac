// RUN: nnc-opt --split-input-file %s -p dce | filecheck %s

// The dead chain constant -> add -> relu goes; the live sigmoid stays.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[S:.*]] = "nn.sigmoid"(%0)
// CHECK-NEXT:    func.return %[[S]]
// CHECK-NOT:     nn.relu

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000803F0000803F">}> : () -> tensor<3xf32>
    %2 = "nn.add"(%0, %1) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %3 = "nn.relu"(%2) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %4 = "nn.sigmoid"(%0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %4 : tensor<2x3xf32>
  }
}

// -----

// Negative: nothing is dead.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[S:.*]] = "nn.sigmoid"(%0)
// CHECK-NEXT:    func.return %[[S]]

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.sigmoid"(%0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %1 : tensor<2x3xf32>
  }
}
