import LifeboatKit
print(LifeboatVersion.string)
