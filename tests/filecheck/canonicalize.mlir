// RUN: nnc-opt --split-input-file %s -p canonicalize | filecheck %s

// reshape(reshape(x)) -> one reshape from x.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[R:.*]] = "nn.reshape"(%0) <{shape = array<i64: 4, 6>}>
// CHECK-NEXT:    func.return %[[R]]

builtin.module {
  func.func @main(%0: tensor<2x3x4xf32>) -> tensor<4x6xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.reshape"(%0) <{shape = array<i64: 6, 4>}> : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %2 = "nn.reshape"(%1) <{shape = array<i64: 4, 6>}> : (tensor<6x4xf32>) -> tensor<4x6xf32>
    func.return %2 : tensor<4x6xf32>
  }
}

// -----

// Identity reshape and identity transpose disappear.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    func.return %0

builtin.module {
  func.func @main(%0: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.reshape"(%0) <{shape = array<i64: 2, 3, 4>}> : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
    %2 = "nn.transpose"(%1) <{perm = array<i64: 0, 1, 2>}> : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
    func.return %2 : tensor<2x3x4xf32>
  }
}

// -----

// transpose chains compose: (1,2,0) then (1,0,2) = (2,1,0); (2,0,1) then (1,2,0) = identity.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[T:.*]] = "nn.transpose"(%0) <{perm = array<i64: 2, 1, 0>}>
// CHECK-NEXT:    func.return %[[T]], %0

builtin.module {
  func.func @main(%0: tensor<2x3x4xf32>) -> (tensor<4x3x2xf32>, tensor<2x3x4xf32>) attributes {nn.input_names = ["x"], nn.output_names = ["y", "z"]} {
    %1 = "nn.transpose"(%0) <{perm = array<i64: 1, 2, 0>}> : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
    %2 = "nn.transpose"(%1) <{perm = array<i64: 1, 0, 2>}> : (tensor<3x4x2xf32>) -> tensor<4x3x2xf32>
    %3 = "nn.transpose"(%0) <{perm = array<i64: 2, 0, 1>}> : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
    %4 = "nn.transpose"(%3) <{perm = array<i64: 1, 2, 0>}> : (tensor<4x2x3xf32>) -> tensor<2x3x4xf32>
    func.return %2, %4 : tensor<4x3x2xf32>, tensor<2x3x4xf32>
  }
}

// -----

// 0 + x and (x * ones(1, 1)) are x.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    func.return %0

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x000000000000000000000000">}> : () -> tensor<3xf32>
    %2 = "nn.add"(%1, %0) : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1], "0x0000803F">}> : () -> tensor<1x1xf32>
    %4 = "nn.mul"(%2, %3) : (tensor<2x3xf32>, tensor<1x1xf32>) -> tensor<2x3xf32>
    func.return %4 : tensor<2x3xf32>
  }
}

// -----

// Negative: a non-zero constant, a zero that broadcasts x to (4, 2, 3), 0 - x, and a real
// transpose are all kept.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.add"(%0, %1)
// CHECK:         "nn.add"(%0, %3)
// CHECK:         "nn.sub"(%5, %0)
// CHECK:         "nn.transpose"(%0)

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<4x2x3xf32>, tensor<2x3xf32>, tensor<3x2xf32>) attributes {nn.input_names = ["x"], nn.output_names = ["a", "z", "s", "t"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x000000000000803F00000000">}> : () -> tensor<3xf32>
    %2 = "nn.add"(%0, %1) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [4, 2, 3], "0x000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000">}> : () -> tensor<4x2x3xf32>
    %4 = "nn.add"(%0, %3) : (tensor<2x3xf32>, tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
    %5 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x000000000000000000000000">}> : () -> tensor<3xf32>
    %6 = "nn.sub"(%5, %0) : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %7 = "nn.transpose"(%0) <{perm = array<i64: 1, 0>}> : (tensor<2x3xf32>) -> tensor<3x2xf32>
    func.return %2, %4, %6, %7 : tensor<2x3xf32>, tensor<4x2x3xf32>, tensor<2x3xf32>, tensor<3x2xf32>
  }
}
